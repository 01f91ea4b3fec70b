//! The smallest tar writer that serves `PUT /containers/{id}/archive`: one directory and the
//! regular files in it, ustar headers, every entry owned by one uid/gid, the files 0600 — the
//! engine extracts them as they are, so the helper (and only it) can read its configuration.

use crate::error::ActionError;
use std::time::{SystemTime, UNIX_EPOCH};

const BLOCK: usize = 512;

/// A ustar archive of directory `dir` (relative, e.g. `etc/pgbouncer`) with `files` in it, all
/// owned by `owner` (uid, gid): the directory 0700, the files 0600. Names must fit ustar's
/// 100-byte name field.
pub fn archive(
    dir: &str,
    files: &[(&str, &[u8])],
    owner: (u32, u32),
) -> Result<Vec<u8>, ActionError> {
    let dir = dir.trim_matches('/');
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = Vec::new();
    out.extend(header(&format!("{dir}/"), 0o700, owner, 0, mtime, b'5')?);
    for (name, contents) in files {
        if name.contains('/') || name.is_empty() {
            return Err(ActionError::Refused(format!(
                "tar: {name:?} is not a plain file name"
            )));
        }
        let path = format!("{dir}/{name}");
        out.extend(header(
            &path,
            0o600,
            owner,
            contents.len() as u64,
            mtime,
            b'0',
        )?);
        out.extend_from_slice(contents);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    // The end of the archive: two zero blocks.
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

/// One ustar header block.
fn header(
    path: &str,
    mode: u32,
    (uid, gid): (u32, u32),
    size: u64,
    mtime: u64,
    kind: u8,
) -> Result<[u8; BLOCK], ActionError> {
    if path.len() > 100 {
        return Err(ActionError::Refused(format!(
            "tar: {path:?} is longer than 100 bytes"
        )));
    }
    let mut block = [0u8; BLOCK];
    block[..path.len()].copy_from_slice(path.as_bytes());
    octal(&mut block[100..108], u64::from(mode));
    octal(&mut block[108..116], u64::from(uid));
    octal(&mut block[116..124], u64::from(gid));
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], mtime);
    block[156] = kind;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field as spaces, then written as six octal digits,
    // a NUL and a space.
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    octal(&mut block[148..155], u64::from(sum));
    block[155] = b' ';
    Ok(block)
}

/// `value` in octal, zero-padded, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tar_reads_back_the_names_owner_modes_and_contents() {
        let ini = b"[pgbouncer]\nlisten_port = 6432\n".to_vec();
        let big = vec![b'x'; 1300];
        let tar = archive(
            "/etc/pgbouncer/",
            &[
                ("pgbouncer.ini", &ini),
                ("userlist.txt", &big),
                ("empty", b""),
            ],
            (65534, 65534),
        )
        .unwrap();
        assert_eq!(tar.len() % BLOCK, 0);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.tar");
        std::fs::write(&file, &tar).unwrap();

        let listing = std::process::Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(listing.status.success(), "{listing:?}");
        let listing = String::from_utf8(listing.stdout).unwrap();
        let lines: Vec<Vec<&str>> = listing
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let entries: Vec<(&str, &str, &str, &str)> = lines
            .iter()
            .map(|f| (f[0], f[1], f[2], f[f.len() - 1]))
            .collect();
        assert_eq!(
            entries,
            [
                ("drwx------", "65534/65534", "0", "etc/pgbouncer/"),
                (
                    "-rw-------",
                    "65534/65534",
                    "31",
                    "etc/pgbouncer/pgbouncer.ini"
                ),
                (
                    "-rw-------",
                    "65534/65534",
                    "1300",
                    "etc/pgbouncer/userlist.txt"
                ),
                ("-rw-------", "65534/65534", "0", "etc/pgbouncer/empty"),
            ],
            "{listing}"
        );

        let read = |name: &str| {
            std::process::Command::new("tar")
                .arg("-xOf")
                .arg(&file)
                .arg(name)
                .output()
                .unwrap()
                .stdout
        };
        assert_eq!(read("etc/pgbouncer/pgbouncer.ini"), ini);
        assert_eq!(read("etc/pgbouncer/userlist.txt"), big);
    }

    #[test]
    fn names_that_do_not_fit_are_refused() {
        assert!(archive("etc", &[("a/b", b"")], (0, 0)).is_err());
        assert!(archive(&"d".repeat(120), &[("f", b"")], (0, 0)).is_err());
    }
}
