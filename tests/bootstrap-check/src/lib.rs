//! What a Lambda bootstrap must be: an arm64 (Graviton) ELF executable, within a size, that needs
//! no glibc newer than Amazon Linux 2023's 2.34. Read from the ELF header and the GNU version
//! needs, with no dependency: `make lambda` checks every shipping build with it, and the
//! end-to-end tests check CI's Lambda build.

use std::fmt;
use std::path::Path;

pub const EM_AARCH64: u16 = 183;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
/// The newest glibc on Lambda's `provided.al2023` runtime.
pub const AL2023_GLIBC: (u32, u32) = (2, 34);
/// Lambda's quota on a function's unzipped deployment package.
pub const LAMBDA_UNZIPPED_BYTES: u64 = 250 * 1000 * 1000;

/// What a bootstrap was found to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    pub bytes: u64,
    pub newest_glibc: (u32, u32),
}

impl fmt::Display for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = self.newest_glibc;
        write!(f, "arm64, {:.1} MiB, needs glibc {major}.{minor}", self.bytes as f64 / 1048576.0)
    }
}

/// Checks the bootstrap at `path`: arm64, at most `max_bytes`, no glibc newer than 2.34.
pub fn check(path: &Path, max_bytes: u64) -> Result<Bootstrap, String> {
    let elf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let fail = |why: String| format!("{}: {why}", path.display());
    let (machine, versions) = machine_and_needed_versions(&elf).map_err(fail)?;
    if machine != EM_AARCH64 {
        return Err(fail(format!("not an arm64 executable (ELF machine {machine})")));
    }
    let newest_glibc = versions
        .iter()
        .filter_map(|v| glibc_version(v))
        .max()
        .ok_or_else(|| fail("links no glibc: not a dynamically linked glibc executable".into()))?;
    if newest_glibc > AL2023_GLIBC {
        return Err(fail(format!(
            "needs GLIBC_{}.{}, newer than AL2023's {}.{}",
            newest_glibc.0, newest_glibc.1, AL2023_GLIBC.0, AL2023_GLIBC.1
        )));
    }
    let bytes = elf.len() as u64;
    if bytes > max_bytes {
        return Err(fail(format!("{bytes} bytes, more than the {max_bytes} allowed")));
    }
    Ok(Bootstrap { bytes, newest_glibc })
}

/// The machine of a 64-bit little-endian ELF file, and the symbol versions it needs (`GLIBC_2.17`, …).
pub fn machine_and_needed_versions(elf: &[u8]) -> Result<(u16, Vec<String>), String> {
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if (elf.get(4), elf.get(5)) != (Some(&2), Some(&1)) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let cut = || "ELF file cut short".to_owned();
    let machine = u16_at(elf, 18).ok_or_else(cut)?;
    let (shoff, shentsize, shnum) = (
        u64_at(elf, 0x28).ok_or_else(cut)?,
        u16_at(elf, 0x3a).ok_or_else(cut)? as usize,
        u16_at(elf, 0x3c).ok_or_else(cut)? as usize,
    );
    let section = |i: usize| shoff + i * shentsize;
    let mut versions = Vec::new();
    for i in 0..shnum {
        let header = section(i);
        if u32_at(elf, header + 4).ok_or_else(cut)? != SHT_GNU_VERNEED {
            continue;
        }
        let offset = u64_at(elf, header + 0x18).ok_or_else(cut)?;
        let link = u32_at(elf, header + 0x28).ok_or_else(cut)? as usize;
        let count = u32_at(elf, header + 0x2c).ok_or_else(cut)?;
        let strings = u64_at(elf, section(link) + 0x18).ok_or_else(cut)?;
        let mut need = offset;
        for _ in 0..count {
            let aux_count = u16_at(elf, need + 2).ok_or_else(cut)?;
            let aux_offset = u32_at(elf, need + 8).ok_or_else(cut)? as usize;
            let next = u32_at(elf, need + 12).ok_or_else(cut)? as usize;
            let mut aux = need + aux_offset;
            for _ in 0..aux_count {
                let name = u32_at(elf, aux + 8).ok_or_else(cut)? as usize;
                versions.push(c_string(elf, strings + name).ok_or_else(cut)?);
                aux += u32_at(elf, aux + 12).ok_or_else(cut)? as usize;
            }
            need += next;
        }
    }
    Ok((machine, versions))
}

/// `GLIBC_2.34` → (2, 34).
pub fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
}

fn bytes<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    bytes(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    bytes(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    bytes(b, at).map(u64::from_le_bytes).and_then(|v| usize::try_from(v).ok())
}

fn c_string(b: &[u8], at: usize) -> Option<String> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_sees_this_test_binary_own_needs() {
        // GIVEN a file known to need glibc: the running test executable
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // WHEN its header and version needs are read
        let (machine, versions) = machine_and_needed_versions(&me).unwrap();
        // THEN it has a machine and asks for some GLIBC_2.x
        assert_ne!(machine, 0);
        assert!(versions.iter().any(|v| v.starts_with("GLIBC_2.")), "{versions:?}");
    }

    #[test]
    fn a_file_not_arm64_or_not_elf_or_cut_short_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("bootstrap-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let cases: [(&str, Vec<u8>, &str); 3] = [
            ("host", me.clone(), "not an arm64 executable"),
            ("text", b"#!/bin/sh\necho hi\n".to_vec(), "not an ELF file"),
            ("cut", me[..0x30].to_vec(), "ELF file cut short"),
        ];
        for (name, content, why) in cases {
            // GIVEN a bootstrap that is not what Lambda runs
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            // WHEN it is checked
            let err = check(&path, u64::MAX).unwrap_err();
            // THEN the error names the file and what is wrong
            assert!(err.starts_with(&path.display().to_string()) && err.contains(why), "{name}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn glibc_versions_compare_as_numbers() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.9"), Some((2, 9)));
        assert!(glibc_version("GLIBC_2.9") < glibc_version("GLIBC_2.17"));
        assert_eq!(glibc_version("GLIBC_2"), Some((2, 0)));
        assert_eq!(glibc_version("GCC_3.0"), None);
    }
}
