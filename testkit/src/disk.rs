//! A small tmpfs for disk-full tests: mounted (as root) on a directory, unmounted when
//! dropped, so a failing test leaves no mount behind.

use std::path::{Path, PathBuf};

/// A mounted tmpfs.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"8m"`) on `dir`; `None`, with the reason printed,
    /// when that is not permitted (not root): the caller skips its test.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` until the file system is full.
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut file =
        std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    for chunk in [65536usize, 4096, 512, 1] {
        let buf = vec![0u8; chunk];
        while file.write_all(&buf).and_then(|()| file.flush()).is_ok() {}
    }
    let _ = file.sync_all();
}
