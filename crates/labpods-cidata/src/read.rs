//! Reads a seed image's root directory: from the Joliet tree when the image has one (the
//! names cloud-init sees on Linux), else from the primary one. Bounded: the image, the
//! directory and each file are checked against the image's size; subdirectories are not
//! read (a NoCloud seed has none).

use crate::{Error, FIRST_DESCRIPTOR, MAX_FILES, MAX_IMAGE_BYTES, SECTOR};

/// A seed image as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub volume_id: String,
    /// `(name, content)`, in directory order: sorted by name in the images [`crate::write`]
    /// makes, in whatever order another writer chose otherwise.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Image {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
    }
}

fn invalid(why: impl Into<String>) -> Error {
    Error::Invalid(why.into())
}

fn le32(b: &[u8], at: usize) -> Result<usize, Error> {
    let bytes: [u8; 4] = b
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| invalid("truncated field"))?;
    usize::try_from(u32::from_le_bytes(bytes)).map_err(|_| invalid("field out of range"))
}

fn slice(image: &[u8], extent: usize, length: usize) -> Result<&[u8], Error> {
    extent
        .checked_mul(SECTOR)
        .and_then(|start| image.get(start..start.checked_add(length)?))
        .ok_or_else(|| invalid(format!("extent {extent} (+{length} bytes) is past the end")))
}

/// The name of a Joliet (UCS-2 big-endian) or primary record, without `;1` or a trailing `.`.
fn name_of(raw: &[u8], joliet: bool) -> Result<String, Error> {
    let name = if joliet {
        let units: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).map_err(|_| invalid("a Joliet name is not UCS-2"))?
    } else {
        String::from_utf8(raw.to_vec()).map_err(|_| invalid("a name is not ASCII"))?
    };
    let name = name.strip_suffix(";1").unwrap_or(&name);
    Ok(name.strip_suffix('.').unwrap_or(name).to_owned())
}

/// Reads the volume id and the root directory's files.
pub fn read(image: &[u8]) -> Result<Image, Error> {
    if image.len() > MAX_IMAGE_BYTES {
        return Err(Error::TooLarge);
    }
    let mut primary = None;
    let mut joliet = None;
    for n in FIRST_DESCRIPTOR.. {
        let d = slice(image, n, SECTOR)?;
        if &d[1..6] != b"CD001" {
            return Err(invalid(format!("sector {n} is not a volume descriptor")));
        }
        match d[0] {
            1 => primary = Some(d),
            2 if d[88..90] == *b"%/" && matches!(d[90], b'@' | b'C' | b'E') => joliet = Some(d),
            255 => break,
            _ => {}
        }
    }
    let (descriptor, is_joliet) = match (joliet, primary) {
        (Some(j), _) => (j, true),
        (None, Some(p)) => (p, false),
        (None, None) => return Err(invalid("no primary volume descriptor")),
    };
    let volume_id = name_of(&descriptor[40..72], is_joliet)?
        .trim_end()
        .to_owned();
    let root = &descriptor[156..190];
    let directory = slice(image, le32(root, 2)?, le32(root, 10)?)?;

    let mut files = Vec::new();
    let mut at = 0;
    while at < directory.len() {
        let len = usize::from(directory[at]);
        if len == 0 {
            // Records never straddle a sector: the rest of this one is padding.
            at = (at / SECTOR + 1) * SECTOR;
            continue;
        }
        let r = directory
            .get(at..at + len)
            .filter(|r| r.len() >= 34)
            .ok_or_else(|| invalid("truncated directory record"))?;
        let name_len = usize::from(r[32]);
        let raw = r
            .get(33..33 + name_len)
            .ok_or_else(|| invalid("directory record name past its end"))?;
        let is_dir = r[25] & 2 != 0;
        if !is_dir {
            if files.len() == MAX_FILES {
                return Err(Error::TooManyFiles(MAX_FILES + 1));
            }
            let data = slice(image, le32(r, 2)?, le32(r, 10)?)?;
            files.push((name_of(raw, is_joliet)?, data.to_vec()));
        }
        at += len;
    }
    Ok(Image { volume_id, files })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::{File, write};

    #[test]
    fn truncated_or_foreign_images_are_refused_not_panicked_on() {
        let image = write(
            &[File {
                name: "meta-data",
                data: b"instance-id: i\n",
            }],
            0,
        )
        .unwrap();
        for len in [0, 100, 16 * SECTOR + 10, 25 * SECTOR + 5] {
            assert!(
                matches!(read(&image[..len]), Err(Error::Invalid(_))),
                "{len}"
            );
        }
        let mut foreign = image.clone();
        foreign[16 * SECTOR + 1] = b'X';
        assert!(matches!(read(&foreign), Err(Error::Invalid(_))));
        // A file extent pointing past the end.
        let mut bad = image.clone();
        let joliet_root = 24 * SECTOR;
        let first_file = joliet_root + 34 + 34;
        bad[first_file + 2..first_file + 6].copy_from_slice(&9999u32.to_le_bytes());
        assert!(matches!(read(&bad), Err(Error::Invalid(_))));
    }

    #[test]
    fn without_joliet_the_level_one_names_are_read() {
        let mut image = write(
            &[File {
                name: "meta-data",
                data: b"x",
            }],
            0,
        )
        .unwrap();
        // Make the Joliet descriptor an unknown kind.
        image[17 * SECTOR] = 3;
        let read = read(&image).unwrap();
        assert_eq!(read.volume_id, "cidata");
        assert_eq!(read.files, vec![("META_DAT".to_owned(), b"x".to_vec())]);
    }
}
