//! NoCloud seed images: what cloud-init looks for on a filesystem labelled `cidata` (its
//! files `meta-data`, `user-data`, `network-config`). Written as ISO 9660 with Joliet names,
//! as `cloud-localds` and `genisoimage -volid cidata -joliet -rock` make them: the ISO 9660
//! level 1 names (`META_DAT.;1`) are what any reader can read, the Joliet ones keep the
//! real names (Linux, and so cloud-init, reads those). One flat root directory, files laid
//! out one after the other; deterministic for a given input and time. [`read`] reads such an
//! image back (the simulator's cloud-init, the tests).
//!
//! Pure: no IO, no clock (the caller gives the time stamped on the volume and its files).

mod date;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
mod read;

pub use read::{Image, read};

/// The volume id cloud-init's NoCloud source looks for.
pub const VOLUME_ID: &str = "cidata";
/// ISO 9660 logical sector size.
pub const SECTOR: usize = 2048;
/// Files a seed holds at most: each directory fits in one sector.
pub const MAX_FILES: usize = 16;
/// Longest file name (Joliet's limit is 64 UCS-2 characters).
pub const MAX_NAME_CHARS: usize = 64;
/// Largest image written or read (seeds are kilobytes; user data is bounded far below).
pub const MAX_IMAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why an image cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("a seed holds at most {MAX_FILES} files, not {0}")]
    TooManyFiles(usize),
    #[error(
        "file name {0:?}: 1 to {MAX_NAME_CHARS} of a-z, 0-9, '.', '_' and '-', not starting with '.'"
    )]
    BadName(String),
    #[error("file names {0:?} and {1:?} map to the same ISO 9660 name")]
    NameClash(String, String),
    #[error("the image would exceed {MAX_IMAGE_BYTES} bytes")]
    TooLarge,
    #[error("not an ISO 9660 image: {0}")]
    Invalid(String),
}

/// Sectors 0-15 are the system area; the volume descriptors follow.
const FIRST_DESCRIPTOR: usize = 16;
/// Primary, Joliet supplementary, terminator; then the four path tables and two roots.
const PRIMARY_PATH_L: usize = 19;
const PRIMARY_PATH_M: usize = 20;
const JOLIET_PATH_L: usize = 21;
const JOLIET_PATH_M: usize = 22;
const PRIMARY_ROOT: usize = 23;
const JOLIET_ROOT: usize = 24;
const FIRST_FILE: usize = 25;
/// Joliet level 3 (UCS-2), the escape sequence genisoimage writes.
const JOLIET_ESCAPE: &[u8; 3] = b"%/E";
/// One path table entry (the root): 8 bytes + a 1-byte name + padding.
const PATH_TABLE_BYTES: usize = 10;

/// A file of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// The seed image holding `files`, stamped `unix_seconds` (UTC).
pub fn write(files: &[File<'_>], unix_seconds: i64) -> Result<Vec<u8>, Error> {
    if files.len() > MAX_FILES {
        return Err(Error::TooManyFiles(files.len()));
    }
    let mut named: Vec<(String, &File<'_>)> = Vec::with_capacity(files.len());
    for f in files {
        let primary = primary_name(f.name)?;
        if let Some((_, other)) = named.iter().find(|(p, _)| *p == primary) {
            return Err(Error::NameClash(other.name.into(), f.name.into()));
        }
        named.push((primary, f));
    }
    let date = date::Recording::from_unix(unix_seconds);

    // Extents, in the order given.
    let mut next = FIRST_FILE;
    let mut extents = Vec::with_capacity(files.len());
    for f in files {
        extents.push(next);
        next = next
            .checked_add(f.data.len().div_ceil(SECTOR))
            .ok_or(Error::TooLarge)?;
    }
    let total = next;
    if total.saturating_mul(SECTOR) > MAX_IMAGE_BYTES {
        return Err(Error::TooLarge);
    }
    let mut image = vec![0u8; total * SECTOR];

    // Directories: ".", "..", then the files sorted by their name in that directory. Each
    // record carries its file's length: an empty file shares its extent with the next one.
    let mut primary: Vec<(Vec<u8>, usize, usize)> = named
        .iter()
        .zip(&extents)
        .map(|((p, f), e)| (p.as_bytes().to_vec(), *e, f.data.len()))
        .collect();
    primary.sort();
    let mut joliet: Vec<(Vec<u8>, usize, usize)> = files
        .iter()
        .zip(&extents)
        .map(|(f, e)| (ucs2(f.name), *e, f.data.len()))
        .collect();
    joliet.sort();
    for (root, entries) in [(PRIMARY_ROOT, &primary), (JOLIET_ROOT, &joliet)] {
        let mut dir = Vec::with_capacity(SECTOR);
        dir.extend(record(root, SECTOR, true, &[0], &date));
        dir.extend(record(root, SECTOR, true, &[1], &date));
        for (name, extent, length) in entries {
            dir.extend(record(*extent, *length, false, name, &date));
        }
        if dir.len() > SECTOR {
            return Err(Error::TooManyFiles(files.len()));
        }
        image[root * SECTOR..root * SECTOR + dir.len()].copy_from_slice(&dir);
    }
    for (f, extent) in files.iter().zip(&extents) {
        image[extent * SECTOR..extent * SECTOR + f.data.len()].copy_from_slice(f.data);
    }

    for (sector, root, big_endian) in [
        (PRIMARY_PATH_L, PRIMARY_ROOT, false),
        (PRIMARY_PATH_M, PRIMARY_ROOT, true),
        (JOLIET_PATH_L, JOLIET_ROOT, false),
        (JOLIET_PATH_M, JOLIET_ROOT, true),
    ] {
        let at = sector * SECTOR;
        let root = u32_of(root);
        image[at] = 1; // name length
        let (location, parent) = if big_endian {
            (root.to_be_bytes(), 1u16.to_be_bytes())
        } else {
            (root.to_le_bytes(), 1u16.to_le_bytes())
        };
        image[at + 2..at + 6].copy_from_slice(&location);
        image[at + 6..at + 8].copy_from_slice(&parent);
    }

    let descriptor = |joliet: bool| {
        descriptor(&DescriptorInput {
            joliet,
            total,
            root: if joliet { JOLIET_ROOT } else { PRIMARY_ROOT },
            path_l: if joliet {
                JOLIET_PATH_L
            } else {
                PRIMARY_PATH_L
            },
            path_m: if joliet {
                JOLIET_PATH_M
            } else {
                PRIMARY_PATH_M
            },
            date: &date,
        })
    };
    let at = |n: usize| (FIRST_DESCRIPTOR + n) * SECTOR;
    image[at(0)..at(1)].copy_from_slice(&descriptor(false));
    image[at(1)..at(2)].copy_from_slice(&descriptor(true));
    image[at(2)..at(2) + 7].copy_from_slice(&[255, b'C', b'D', b'0', b'0', b'1', 1]);
    Ok(image)
}

/// Checks a seed file name and gives its ISO 9660 level 1 name (`BASENAME.EXT;1`, upper
/// case, other characters as `_`), as genisoimage maps them.
fn primary_name(name: &str) -> Result<String, Error> {
    let valid = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.starts_with('.')
        // Readers drop a trailing dot (`NAME.;1` is how a name without extension is written):
        // found by the cidata_image fuzz target, `network.` read back as `network`.
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(Error::BadName(name.into()));
    }
    let d_chars = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .take(max)
            .collect()
    };
    let (base, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    Ok(format!("{}.{};1", d_chars(base, 8), d_chars(ext, 3)))
}

fn ucs2(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn u32_of(n: usize) -> u32 {
    // Bounded by MAX_IMAGE_BYTES, checked before any extent is written.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// ISO 9660 "both-endian": little-endian then big-endian.
fn both32(n: usize) -> [u8; 8] {
    let n = u32_of(n);
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&n.to_le_bytes());
    b[4..].copy_from_slice(&n.to_be_bytes());
    b
}

fn both16(n: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&n.to_le_bytes());
    b[2..].copy_from_slice(&n.to_be_bytes());
    b
}

/// A directory record (ECMA-119 9.1), padded to an even length.
fn record(
    extent: usize,
    length: usize,
    directory: bool,
    name: &[u8],
    date: &date::Recording,
) -> Vec<u8> {
    let len = 33 + name.len() + (1 - name.len() % 2);
    let mut r = vec![0u8; len];
    r[0] = u8::try_from(len).unwrap_or(u8::MAX);
    r[2..10].copy_from_slice(&both32(extent));
    r[10..18].copy_from_slice(&both32(length));
    r[18..25].copy_from_slice(&date.directory());
    r[25] = if directory { 2 } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = u8::try_from(name.len()).unwrap_or(u8::MAX);
    r[33..33 + name.len()].copy_from_slice(name);
    r
}

struct DescriptorInput<'a> {
    joliet: bool,
    total: usize,
    root: usize,
    path_l: usize,
    path_m: usize,
    date: &'a date::Recording,
}

/// The primary (ECMA-119 8.4) or the Joliet supplementary volume descriptor.
fn descriptor(d: &DescriptorInput<'_>) -> [u8; SECTOR] {
    let mut v = [0u8; SECTOR];
    v[0] = if d.joliet { 2 } else { 1 };
    v[1..6].copy_from_slice(b"CD001");
    v[6] = 1;
    // Text fields: a-/d-characters padded with spaces; UCS-2 padded with UCS-2 spaces.
    let text = |v: &mut [u8; SECTOR], at: usize, len: usize, s: &str| {
        let bytes = if d.joliet {
            ucs2(s)
        } else {
            s.as_bytes().to_vec()
        };
        let pad: &[u8] = if d.joliet { &[0, b' '] } else { b" " };
        for (i, b) in v[at..at + len].iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(pad[i % pad.len()]);
        }
    };
    text(&mut v, 8, 32, "");
    text(&mut v, 40, 32, VOLUME_ID);
    v[80..88].copy_from_slice(&both32(d.total));
    if d.joliet {
        v[88..91].copy_from_slice(JOLIET_ESCAPE);
    }
    v[120..124].copy_from_slice(&both16(1));
    v[124..128].copy_from_slice(&both16(1));
    v[128..132].copy_from_slice(&both16(2048));
    v[132..140].copy_from_slice(&both32(PATH_TABLE_BYTES));
    v[140..144].copy_from_slice(&u32_of(d.path_l).to_le_bytes());
    v[148..152].copy_from_slice(&u32_of(d.path_m).to_be_bytes());
    v[156..190].copy_from_slice(&record(d.root, SECTOR, true, &[0], d.date));
    for at in [190, 318, 446] {
        text(&mut v, at, 128, "");
    }
    text(&mut v, 574, 128, "LABPODS");
    for at in [702, 739, 776] {
        text(&mut v, at, 37, "");
    }
    let stamp = d.date.volume();
    v[813..830].copy_from_slice(&stamp);
    v[830..847].copy_from_slice(&stamp);
    v[847..864].copy_from_slice(&date::UNSET);
    v[864..881].copy_from_slice(&date::UNSET);
    v[881] = 1;
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// Found by the cidata_image fuzz target: an empty file took no sector, and the file
    /// after it was written with the empty one's length (user-data lost).
    #[test]
    fn an_empty_file_keeps_the_next_files_content() {
        let files = [
            File {
                name: "network-config",
                data: b"",
            },
            File {
                name: "user-data",
                data: b"#cloud-config\n",
            },
        ];
        let image = read(&write(&files, 0).unwrap()).unwrap();
        assert_eq!(image.file("network-config"), Some(&b""[..]));
        assert_eq!(image.file("user-data"), Some(&b"#cloud-config\n"[..]));
    }

    #[test]
    fn names_map_to_level_one_and_bad_names_are_refused() {
        assert_eq!(primary_name("meta-data").unwrap(), "META_DAT.;1");
        assert_eq!(primary_name("network-config").unwrap(), "NETWORK_.;1");
        assert_eq!(primary_name("vendor.data.yaml").unwrap(), "VENDOR_D.YAM;1");
        for bad in [
            "",
            ".hidden",
            "trailing.",
            "User-Data",
            "a/b",
            &"x".repeat(65),
        ] {
            assert_eq!(primary_name(bad), Err(Error::BadName(bad.into())), "{bad}");
        }
        let clash = write(
            &[
                File {
                    name: "user-data",
                    data: b"",
                },
                File {
                    name: "user_data",
                    data: b"",
                },
            ],
            0,
        );
        assert_eq!(
            clash,
            Err(Error::NameClash("user-data".into(), "user_data".into()))
        );
    }

    #[test]
    fn a_seed_reads_back_with_its_names_volume_id_and_bytes() {
        let big = vec![b'x'; 3 * SECTOR + 5];
        let files = [
            File {
                name: "user-data",
                data: b"#cloud-config\nhostname: node-0\n",
            },
            File {
                name: "meta-data",
                data: b"instance-id: i-1\n",
            },
            File {
                name: "network-config",
                data: &big,
            },
            File {
                name: "vendor-data",
                data: b"",
            },
        ];
        let image = write(&files, 1_800_000_000).unwrap();
        assert_eq!(image.len() % SECTOR, 0);
        let read = read(&image).unwrap();
        assert_eq!(read.volume_id, VOLUME_ID);
        let mut want: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|f| (f.name.to_owned(), f.data.to_vec()))
            .collect();
        want.sort();
        assert_eq!(read.files, want);
        assert_eq!(read.file("meta-data"), Some(&b"instance-id: i-1\n"[..]));
        assert_eq!(
            write(&files, 1_800_000_000).unwrap(),
            image,
            "deterministic"
        );
    }

    #[test]
    fn too_many_files_or_bytes_are_refused() {
        let names: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
        let files: Vec<File<'_>> = names.iter().map(|n| File { name: n, data: b"" }).collect();
        assert_eq!(write(&files, 0), Err(Error::TooManyFiles(MAX_FILES + 1)));
        let huge = vec![0u8; MAX_IMAGE_BYTES];
        let one = [File {
            name: "user-data",
            data: &huge,
        }];
        assert_eq!(write(&one, 0), Err(Error::TooLarge));
    }
}
