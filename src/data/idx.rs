//! The IDX format of MNIST and Fashion-MNIST: magic 00 00 <element type> <number of dimensions>, then one
//! big-endian u32 per dimension, then the elements. Only unsigned bytes (type 0x08) are read, which is what
//! image and label files hold. Files may be gzipped; that is told by their first bytes, not their name.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use super::DataError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const DTYPE_U8: u8 = 0x08;

/// An IDX file's dimensions and its elements, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// A stack of grayscale images, `pixels` laid out [count, rows, cols].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Reads an images file (3 dimensions: count, rows, cols), raw or gzipped.
pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let array = read_idx(path)?;
    match array.dims[..] {
        [count, rows, cols] => Ok(IdxImages { count, rows, cols, pixels: array.data }),
        _ => Err(wrong_dimensions(path, "images", 3, &array)),
    }
}

/// Reads a labels file (1 dimension), raw or gzipped.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let array = read_idx(path)?;
    match array.dims[..] {
        [_] => Ok(array.data),
        _ => Err(wrong_dimensions(path, "labels", 1, &array)),
    }
}

fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })?;
    parse_idx(&bytes, path)
}

fn wrong_dimensions(path: &Path, what: &'static str, expected: usize, array: &IdxArray) -> DataError {
    DataError::WrongDimensions { path: path.into(), what, expected, found: array.dims.len() }
}

/// Parses a whole IDX file's content, raw or gzipped; `source` is only used to name it in errors.
/// The data must be exactly as long as the dimensions say: a short file was cut off in a download,
/// and a long one is not what its header claims, so both are errors rather than guesses.
pub fn parse_idx(bytes: &[u8], source: &Path) -> Result<IdxArray, DataError> {
    let bytes = gunzip_if_needed(bytes, source)?;
    let truncated = |part, expected| DataError::Truncated { path: source.into(), part, expected, got: bytes.len() };
    let &[zero0, zero1, dtype, ndim] = bytes.first_chunk().ok_or_else(|| truncated("header", 4))?;
    if [zero0, zero1] != [0, 0] {
        return Err(DataError::BadMagic { path: source.into(), magic: [zero0, zero1] });
    }
    if dtype != DTYPE_U8 {
        return Err(DataError::UnsupportedDtype { path: source.into(), dtype });
    }
    let header_len = 4 + 4 * usize::from(ndim);
    let dims: Vec<usize> = bytes
        .get(4..header_len)
        .ok_or_else(|| truncated("header", header_len))?
        .chunks_exact(4)
        .map(|dim| u32::from_be_bytes([dim[0], dim[1], dim[2], dim[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |len, &dim| len.checked_mul(dim));
    let Some(expected) = expected else { return Err(DataError::TooLarge { path: source.into(), dims }) };
    let data = &bytes[header_len..];
    if data.len() < expected {
        return Err(DataError::Truncated { path: source.into(), part: "data", expected, got: data.len() });
    }
    if data.len() > expected {
        return Err(DataError::TrailingBytes { path: source.into(), expected, got: data.len() });
    }
    Ok(IdxArray { dims, data: data.to_vec() })
}

/// The most an IDX file may unpack to (Fashion-MNIST's training images are 47 MB): a small file that
/// claims more is a "gzip bomb" or damaged, and would otherwise exhaust memory before any check.
const MAX_UNPACKED_BYTES: u64 = 1 << 30;

fn gunzip_if_needed<'a>(bytes: &'a [u8], source: &Path) -> Result<Cow<'a, [u8]>, DataError> {
    gunzip_limited(bytes, source, MAX_UNPACKED_BYTES)
}

fn gunzip_limited<'a>(bytes: &'a [u8], source: &Path, limit: u64) -> Result<Cow<'a, [u8]>, DataError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut unpacked = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut unpacked)
        .map_err(|source_error| DataError::Gzip { path: source.into(), source: source_error })?;
    if unpacked.len() as u64 > limit {
        return Err(DataError::GzipTooLarge { path: source.into(), limit });
    }
    Ok(Cow::Owned(unpacked))
}

/// An IDX file of unsigned bytes with these dimensions (uncompressed), for tests and small exports.
///
/// # Panics
/// If `data.len()` is not the product of `dims`, or a dimension does not fit the format
/// (more than 255 dimensions, or one above u32::MAX): that would write a file no reader accepts.
pub fn write_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "IDX data length must be the product of {dims:?}");
    let ndim = u8::try_from(dims.len()).unwrap_or_else(|_| panic!("IDX allows at most 255 dimensions"));
    let mut bytes = vec![0, 0, DTYPE_U8, ndim];
    for &dim in dims {
        let dim = u32::try_from(dim).unwrap_or_else(|_| panic!("IDX dimension {dim} does not fit in u32"));
        bytes.extend_from_slice(&dim.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    use std::path::PathBuf;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn images_file() -> Vec<u8> {
        write_idx(&[2, 3, 4], &(0..24).collect::<Vec<u8>>())
    }

    fn parse(bytes: &[u8]) -> Result<IdxArray, DataError> {
        parse_idx(bytes, Path::new("test.idx"))
    }

    /// The error's message, checked to name the file, since that is what a user needs first.
    fn message(result: Result<IdxArray, DataError>) -> String {
        let message = result.unwrap_err().to_string();
        assert!(message.contains("test.idx"), "{message}");
        message
    }

    #[test]
    fn round_trip_raw_and_gzip_files() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<u8> = (0..24).collect();
        let labels = [3, 1];
        // A gzipped file under a raw name and a raw one under a .gz name: the content decides, not the name.
        let images_path = dir.path().join("images-idx3-ubyte");
        let labels_path = dir.path().join("labels-idx1-ubyte.gz");
        std::fs::write(&images_path, gzip(&images_file())).unwrap();
        std::fs::write(&labels_path, write_idx(&[2], &labels)).unwrap();
        let images = read_images(&images_path).unwrap();
        assert_eq!(images, IdxImages { count: 2, rows: 3, cols: 4, pixels: pixels.clone() });
        assert_eq!(read_labels(&labels_path).unwrap(), labels);

        std::fs::write(&images_path, images_file()).unwrap();
        std::fs::write(&labels_path, gzip(&write_idx(&[2], &labels))).unwrap();
        assert_eq!(read_images(&images_path).unwrap().pixels, pixels);
        assert_eq!(read_labels(&labels_path).unwrap(), labels);
    }

    #[test]
    fn rejects_wrong_magic_and_dtype() {
        let mut bytes = images_file();
        bytes[0] = 0x42;
        assert!(message(parse(&bytes)).contains("not an IDX file"));
        let mut bytes = images_file();
        bytes[2] = 0x0d; // IDX's float type
        let text = message(parse(&bytes));
        assert!(text.contains("0x0d") && text.contains("only 0x08"), "{text}");
    }

    #[test]
    fn rejects_wrong_number_of_dimensions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wrong.idx");
        std::fs::write(&path, write_idx(&[2, 3], &[0; 6])).unwrap();
        for err in [read_images(&path).unwrap_err(), read_labels(&path).map(|_| ()).unwrap_err()] {
            assert!(matches!(err, DataError::WrongDimensions { found: 2, .. }), "{err}");
            assert!(err.to_string().contains("wrong.idx"), "{err}");
        }
    }

    #[test]
    fn rejects_truncated_and_trailing_data() {
        let bytes = images_file();
        let text = message(parse(&bytes[..bytes.len() - 5]));
        assert!(text.contains("truncated") && text.contains("expected 24 bytes") && text.contains("got 19"), "{text}");
        let text = message(parse(&bytes[..10]));
        assert!(text.contains("header"), "{text}");
        assert!(matches!(parse(&[0, 0]), Err(DataError::Truncated { part: "header", .. })));

        let mut long = bytes.clone();
        long.extend_from_slice(&[1, 2, 3]);
        let text = message(parse(&long));
        assert!(text.contains("trailing") && text.contains("expected 24") && text.contains("got 27"), "{text}");
    }

    #[test]
    fn rejects_corrupt_gzip() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
        let packed = gzip(&write_idx(&[5000], &data));
        let mut flipped = packed.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        for corrupt in [&flipped[..], &packed[..packed.len() / 2], &[0x1f, 0x8b, 1, 2, 3][..]] {
            let err = parse(corrupt).unwrap_err();
            assert!(matches!(err, DataError::Gzip { .. }), "{err}");
            assert!(err.to_string().contains("test.idx: corrupt gzip stream"), "{err}");
        }
    }

    #[test]
    fn a_gzip_that_unpacks_beyond_the_limit_is_refused() {
        let big = gzip(&write_idx(&[5000], &[0u8; 5000]));
        let error = gunzip_limited(&big, Path::new("bomb.gz"), 1000).unwrap_err().to_string();
        assert!(error.contains("bomb.gz") && error.contains("more than 1000 bytes"), "{error}");
        assert!(gunzip_limited(&big, Path::new("fine.gz"), 10_000).is_ok());
    }

    #[test]
    fn missing_file_names_the_path() {
        let path = PathBuf::from("/nonexistent/dir/train-images-idx3-ubyte.gz");
        let text = read_images(&path).unwrap_err().to_string();
        assert!(text.contains("/nonexistent/dir/train-images-idx3-ubyte.gz"), "{text}");
    }
}
