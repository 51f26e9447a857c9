//! Capabilities: the verbs a policy grants on a path, kept as a small bit set.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Sub};
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A set of capabilities (`create`, `read`, `update`, `patch`, `delete`, `list`, `scan`, `sudo`,
/// `deny`), stored as bits. The bit values follow OpenBao's, so the numeric form matches what
/// OpenBao reports as a capabilities bitmap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capability(u32);

/// Every named capability with its policy keyword, in bit order.
const NAMED: [(Capability, &str); 9] = [
    (Capability::DENY, "deny"),
    (Capability::CREATE, "create"),
    (Capability::READ, "read"),
    (Capability::UPDATE, "update"),
    (Capability::DELETE, "delete"),
    (Capability::LIST, "list"),
    (Capability::SUDO, "sudo"),
    (Capability::PATCH, "patch"),
    (Capability::SCAN, "scan"),
];

impl Capability {
    /// The empty set.
    pub const NONE: Capability = Capability(0);
    /// `deny`: overrides every other capability on the path.
    pub const DENY: Capability = Capability(1);
    /// `create`: write to a path that does not exist yet.
    pub const CREATE: Capability = Capability(1 << 1);
    /// `read`: read a path.
    pub const READ: Capability = Capability(1 << 2);
    /// `update`: write to an existing path (also renew, revoke and rollback operations).
    pub const UPDATE: Capability = Capability(1 << 3);
    /// `delete`: delete a path.
    pub const DELETE: Capability = Capability(1 << 4);
    /// `list`: list the keys under a path.
    pub const LIST: Capability = Capability(1 << 5);
    /// `sudo`: reach root-protected paths.
    pub const SUDO: Capability = Capability(1 << 6);
    /// `patch`: partially update a path.
    pub const PATCH: Capability = Capability(1 << 7);
    /// `scan`: recursively list the keys under a path.
    pub const SCAN: Capability = Capability(1 << 8);

    /// All the bits that name a capability.
    const ALL_BITS: u32 = (1 << 9) - 1;

    /// The raw bit set (OpenBao's capabilities bitmap).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// A set from raw bits; bits that name no capability are dropped.
    pub const fn from_bits_truncate(bits: u32) -> Capability {
        Capability(bits & Self::ALL_BITS)
    }

    /// True when no capability is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every capability of `other` is in `self` (and `other` is not empty).
    pub const fn contains(self, other: Capability) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    /// True when `self` and `other` share at least one capability.
    pub const fn intersects(self, other: Capability) -> bool {
        self.0 & other.0 != 0
    }

    /// The union of two sets.
    pub const fn union(self, other: Capability) -> Capability {
        Capability(self.0 | other.0)
    }

    /// Adds the capabilities of `other`.
    pub fn insert(&mut self, other: Capability) {
        self.0 |= other.0;
    }

    /// Removes the capabilities of `other`.
    pub fn remove(&mut self, other: Capability) {
        self.0 &= !other.0;
    }

    /// Parses one capability keyword as a policy accepts it (`"read"`, `"sudo"`, ...).
    ///
    /// Keywords are case-sensitive, as in OpenBao; `root` is not a capability a policy can grant.
    pub fn parse(name: &str) -> Result<Capability, UnknownCapability> {
        NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
            .ok_or_else(|| UnknownCapability(name.to_string()))
    }

    /// The keyword of a single capability, or `None` when the set is empty or holds several.
    pub fn name(self) -> Option<&'static str> {
        NAMED.iter().find(|(c, _)| *c == self).map(|(_, n)| *n)
    }

    /// The keywords of every capability in the set, sorted alphabetically (the order in which
    /// `sys/capabilities` answers).
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.iter().filter_map(Capability::name).collect();
        names.sort_unstable();
        names
    }

    /// Iterates over the single capabilities in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        NAMED
            .iter()
            .map(|(c, _)| *c)
            .filter(move |c| self.0 & c.0 != 0)
    }
}

/// A capability keyword that OpenBao does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid capability {0:?}")]
pub struct UnknownCapability(pub String);

impl FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::parse(s)
    }
}

impl fmt::Display for Capability {
    /// The alphabetically sorted keywords joined by `", "`; the empty set prints nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Capability({})", self.names().join("|"))
    }
}

impl Serialize for Capability {
    /// Serializes as the sorted list of keywords.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(serializer)
    }
}

impl BitOr for Capability {
    type Output = Capability;
    fn bitor(self, rhs: Capability) -> Capability {
        self.union(rhs)
    }
}

impl BitOrAssign for Capability {
    fn bitor_assign(&mut self, rhs: Capability) {
        self.insert(rhs);
    }
}

impl BitAnd for Capability {
    type Output = Capability;
    fn bitand(self, rhs: Capability) -> Capability {
        Capability(self.0 & rhs.0)
    }
}

impl BitAndAssign for Capability {
    fn bitand_assign(&mut self, rhs: Capability) {
        self.0 &= rhs.0;
    }
}

impl Sub for Capability {
    type Output = Capability;
    fn sub(self, rhs: Capability) -> Capability {
        Capability(self.0 & !rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for name in [
            "deny", "create", "read", "update", "delete", "list", "sudo", "patch", "scan",
        ] {
            let cap = Capability::parse(name).unwrap();
            assert_eq!(cap.to_string(), name);
            assert_eq!(cap.name(), Some(name));
            assert_eq!(name.parse::<Capability>().unwrap(), cap);
        }
    }

    #[test]
    fn unknown_capabilities_are_rejected_by_name() {
        for bad in ["root", "subscribe", "recover", "Read", "", "write"] {
            let err = Capability::parse(bad).unwrap_err();
            assert_eq!(err.to_string(), format!("invalid capability {bad:?}"));
        }
    }

    #[test]
    fn bits_match_openbao() {
        assert_eq!(Capability::DENY.bits(), 1);
        assert_eq!(Capability::CREATE.bits(), 2);
        assert_eq!(Capability::READ.bits(), 4);
        assert_eq!(Capability::UPDATE.bits(), 8);
        assert_eq!(Capability::DELETE.bits(), 16);
        assert_eq!(Capability::LIST.bits(), 32);
        assert_eq!(Capability::SUDO.bits(), 64);
        assert_eq!(Capability::PATCH.bits(), 128);
        assert_eq!(Capability::SCAN.bits(), 256);
        assert_eq!(Capability::from_bits_truncate(0xffff_ffff).bits(), 511);
    }

    #[test]
    fn set_operations() {
        let mut set = Capability::READ | Capability::LIST;
        assert!(set.contains(Capability::READ));
        assert!(set.contains(Capability::READ | Capability::LIST));
        assert!(!set.contains(Capability::UPDATE));
        assert!(!set.contains(Capability::NONE));
        assert!(set.intersects(Capability::LIST | Capability::SUDO));
        set.insert(Capability::SUDO);
        set.remove(Capability::READ);
        assert_eq!(set, Capability::LIST | Capability::SUDO);
        assert_eq!(set - Capability::LIST, Capability::SUDO);
        assert_eq!(set & Capability::LIST, Capability::LIST);
        assert_eq!(set.name(), None);
        assert_eq!(set.to_string(), "list, sudo");
        assert_eq!(Capability::NONE.to_string(), "");
        assert!(Capability::NONE.is_empty());
    }

    #[test]
    fn names_are_sorted_like_sys_capabilities() {
        let all = NAMED.iter().fold(Capability::NONE, |acc, (c, _)| acc | *c);
        assert_eq!(
            all.names(),
            vec!["create", "delete", "deny", "list", "patch", "read", "scan", "sudo", "update"]
        );
        assert_eq!(
            serde_json::to_string(&(Capability::UPDATE | Capability::CREATE)).unwrap(),
            r#"["create","update"]"#
        );
    }
}
