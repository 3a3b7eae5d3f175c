//! The bootstraps `sam build` deploys (`make sam-build`, which `make test` runs first) are built
//! for Lambda: arm64 ELF executables that need no glibc newer than AL2023's 2.34.

use std::path::{Path, PathBuf};

use session_archiver::ServiceId;

const EM_AARCH64: u16 = 183;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
const AL2023_GLIBC: (u32, u32) = (2, 34);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

fn c_string(b: &[u8], at: usize) -> String {
    let end = b[at..].iter().position(|&c| c == 0).map_or(b.len(), |n| at + n);
    String::from_utf8_lossy(&b[at..end]).into_owned()
}

/// The machine of a 64-bit little-endian ELF file, and the symbol versions it needs (`GLIBC_2.17`, …).
fn machine_and_needed_versions(elf: &[u8]) -> (u16, Vec<String>) {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((elf[4], elf[5]), (2, 1), "not a 64-bit little-endian ELF");
    let machine = u16_at(elf, 18);
    let (shoff, shentsize, shnum) = (u64_at(elf, 0x28), u16_at(elf, 0x3a) as usize, u16_at(elf, 0x3c) as usize);
    let section = |i: usize| shoff + i * shentsize;
    let mut versions = Vec::new();
    for i in 0..shnum {
        let header = section(i);
        if u32_at(elf, header + 4) != SHT_GNU_VERNEED {
            continue;
        }
        let (offset, link, count) =
            (u64_at(elf, header + 0x18), u32_at(elf, header + 0x28) as usize, u32_at(elf, header + 0x2c));
        let strings = u64_at(elf, section(link) + 0x18);
        let mut need = offset;
        for _ in 0..count {
            let (aux_count, aux_offset, next) =
                (u16_at(elf, need + 2), u32_at(elf, need + 8) as usize, u32_at(elf, need + 12) as usize);
            let mut aux = need + aux_offset;
            for _ in 0..aux_count {
                versions.push(c_string(elf, strings + u32_at(elf, aux + 8) as usize));
                aux += u32_at(elf, aux + 12) as usize;
            }
            need += next;
        }
    }
    (machine, versions)
}

fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
}

#[test]
fn every_bootstrap_is_an_arm64_binary_needing_at_most_glibc_2_34() {
    let sessions =
        ServiceId::ALL.map(|service| (service.as_str(), format!("{}Function", archiver_e2e::pascal_case(service))));
    let planner = [("scope-planner", "ScopePlannerFunction".to_owned())];
    for (name, logical) in sessions.into_iter().chain(planner) {
        for path in [
            root().join("target/lambda").join(name).join("bootstrap"),
            root().join(".aws-sam/build").join(&logical).join("bootstrap"),
        ] {
            // GIVEN the bootstrap `make lambda` and `sam build` left
            let elf = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e}: run `make sam-build` (make test does)", path.display()));
            // WHEN its header and version needs are read
            let (machine, versions) = machine_and_needed_versions(&elf);
            // THEN it is for arm64 and asks for no glibc newer than 2.34
            assert_eq!(machine, EM_AARCH64, "{}: not an arm64 binary", path.display());
            let glibc: Vec<(u32, u32)> = versions.iter().filter_map(|v| glibc_version(v)).collect();
            assert!(!glibc.is_empty(), "{}: links glibc", path.display());
            let newest = glibc.iter().max().unwrap();
            assert!(*newest <= AL2023_GLIBC, "{}: needs GLIBC_{}.{}", path.display(), newest.0, newest.1);
        }
    }
}

#[test]
fn the_version_reader_sees_this_test_binary_own_needs() {
    // The reader itself, on a file known to need glibc: the running test executable.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let (machine, versions) = machine_and_needed_versions(&me);
    assert_ne!(machine, 0);
    assert!(versions.iter().any(|v| v.starts_with("GLIBC_2.")), "{versions:?}");
}
