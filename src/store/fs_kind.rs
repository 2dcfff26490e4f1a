//! Whether the home is on a network filesystem: SQLite's WAL needs shared memory between
//! the processes of one machine and is unsafe across machines, so there the store uses a
//! rollback journal (and relies on the filesystem's POSIX locks).

use std::path::Path;

/// The filesystem type's name when it is a network filesystem.
pub fn network_filesystem(dir: &Path) -> Option<&'static str> {
    let stat = nix::sys::statfs::statfs(dir).ok()?;
    name_of(stat.filesystem_type().0 as i64)
}

/// Network and cluster filesystems by their statfs magic numbers.
fn name_of(magic: i64) -> Option<&'static str> {
    Some(match magic {
        0x6969 => "nfs",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0x517B => "smb",
        0x0BD0_0BD0 => "lustre",
        0x4750_4653 => "gpfs",
        0x1983_0326 => "beegfs",
        0x00C3_6400 => "ceph",
        0x6573_5546 => "fuse",
        0x5346_414F => "afs",
        0x0102_1997 => "9p",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfs_and_lustre_are_network_filesystems_and_ext4_is_not() {
        assert_eq!(name_of(0x6969), Some("nfs"));
        assert_eq!(name_of(0x0BD0_0BD0), Some("lustre"));
        assert_eq!(name_of(0xEF53), None);
    }
}
