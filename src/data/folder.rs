//! A folder of PNG / JPEG images as a [`Dataset`], so a user can train on their own pictures.
//! Images in sub-folders are labelled by the sub-folder (one class each, sorted by name); images directly in
//! the folder make an unlabelled set. Every image is converted and resized to one shape, and the order is the
//! sorted order of paths, so the same folder always gives the same data set.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader, imageops::FilterType};

use super::{DataError, Dataset, unit_from_u8};

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// A folder's images, and the image files that could not be used, each with the reason.
#[derive(Debug)]
pub struct FolderData {
    pub data: Dataset,
    pub skipped: Vec<(PathBuf, String)>,
    /// Each kept image's caption: the text of the `.txt` file beside it with the same stem (`cat.png` ->
    /// `cat.txt`, the convention of existing fine-tuning tools), `None` where there is none.
    pub captions: Vec<Option<String>>,
}

/// The caption file beside an image: the same stem with `.txt`; its text trimmed, `None` when absent or
/// unreadable as UTF-8.
pub fn caption_beside(image: &Path) -> Option<String> {
    std::fs::read_to_string(image.with_extension("txt")).ok().map(|text| text.trim().to_string())
}

/// Larger images are refused before they are decoded: a 20000x20000 header would ask for gigabytes.
const MAX_IMAGE_SIDE: u32 = 8192;
const MAX_DECODE_BYTES: u64 = 512 << 20;

/// Loads every image under `dir` as `channels` (1: grayscale luma, 3: RGB) x `height` x `width`.
/// A file that does not decode (empty, not an image, unreadable, implausibly large) is skipped and listed
/// in [`FolderData::skipped`], never fatal: one bad photo should not stop a training run. A folder in
/// which no image decodes is an error.
pub fn load_folder(dir: &Path, height: usize, width: usize, channels: usize) -> Result<FolderData, DataError> {
    let bad_shape = || DataError::BadShape { path: dir.into(), channels, height, width };
    let size = |side: usize| u32::try_from(side).ok().filter(|&side| side > 0);
    let (Some(height_u32), Some(width_u32)) = (size(height), size(width)) else { return Err(bad_shape()) };
    if channels != 1 && channels != 3 {
        return Err(bad_shape());
    }

    let entries = sorted_entries(dir)?;
    let root_images: Vec<PathBuf> = entries.iter().filter(|path| is_image(path)).cloned().collect();
    let mut class_names = Vec::new();
    let mut class_images = Vec::new();
    for sub_dir in entries.iter().filter(|path| path.is_dir()) {
        let images: Vec<PathBuf> = sorted_entries(sub_dir)?.into_iter().filter(|path| is_image(path)).collect();
        if !images.is_empty() {
            class_names.push(sub_dir.file_name().unwrap_or_default().to_string_lossy().into_owned());
            class_images.push(images);
        }
    }
    let (paths, labels): (Vec<PathBuf>, Option<Vec<usize>>) = match (root_images.first(), class_images.is_empty()) {
        (None, true) => return Err(DataError::NoImages { path: dir.into() }),
        (Some(_), true) => (root_images, None),
        (Some(file), false) => return Err(DataError::MixedLabels { path: dir.into(), file: file.clone() }),
        (None, false) => {
            let labels = class_images.iter().enumerate().flat_map(|(label, images)| vec![label; images.len()]);
            (class_images.concat(), Some(labels.collect()))
        }
    };

    let mut images = Vec::with_capacity(paths.len() * channels * height * width);
    let mut kept_labels = Vec::with_capacity(paths.len());
    let mut captions = Vec::with_capacity(paths.len());
    let mut skipped = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        match decode(path) {
            Ok(image) => {
                images.extend(planes_from_image(&image, height_u32, width_u32, channels));
                kept_labels.push(labels.as_ref().map(|labels| labels[i]));
                captions.push(caption_beside(path));
            }
            Err(e) => skipped.push((path.clone(), e.to_string())),
        }
    }
    if kept_labels.is_empty() {
        return Err(DataError::NoImages { path: dir.into() });
    }
    let labels = labels.map(|_| kept_labels.iter().flatten().copied().collect());
    let data = Dataset { images, count: kept_labels.len(), channels, height, width, labels, class_names };
    Ok(FolderData { data, skipped, captions })
}

/// One image file as `channels` x `height` x `width` values in [-1, 1] (any size and format in).
pub fn load_image(path: &Path, height: usize, width: usize, channels: usize) -> Result<Vec<f32>, DataError> {
    let bad_shape = || DataError::BadShape { path: path.into(), channels, height, width };
    let size = |side: usize| u32::try_from(side).ok().filter(|&side| side > 0);
    let (Some(height_u32), Some(width_u32)) = (size(height), size(width)) else { return Err(bad_shape()) };
    if channels != 1 && channels != 3 {
        return Err(bad_shape());
    }
    Ok(planes_from_image(&decode(path)?, height_u32, width_u32, channels))
}

fn planes_from_image(image: &DynamicImage, height: u32, width: u32, channels: usize) -> Vec<f32> {
    let image = match channels {
        1 => DynamicImage::ImageLuma8(image.to_luma8()),
        _ => DynamicImage::ImageRgb8(image.to_rgb8()),
    };
    let interleaved = image.resize_exact(width, height, FilterType::Triangle).into_bytes();
    // [height, width, channels] interleaved -> [channels, height, width] planes.
    (0..channels)
        .flat_map(|channel| interleaved.iter().skip(channel).step_by(channels).map(|&value| unit_from_u8(value)))
        .collect()
}

/// The entries of `dir`, sorted, without hidden ones (`.git`, macOS `._photo.jpg` resource forks).
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io_error = |source| DataError::Io { path: dir.into(), source };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn is_image(path: &Path) -> bool {
    let extension = path.extension().map(|extension| extension.to_string_lossy().to_lowercase());
    path.is_file() && extension.is_some_and(|extension| IMAGE_EXTENSIONS.contains(&extension.as_str()))
}

/// Decodes by content rather than by extension, so a JPEG saved as .png still loads.
fn decode(path: &Path) -> Result<DynamicImage, DataError> {
    let io_error = |source| DataError::Io { path: path.into(), source };
    let mut reader = ImageReader::open(path).map_err(io_error)?.with_guessed_format().map_err(io_error)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.decode().map_err(|source| DataError::Decode { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn write_png(path: &Path, width: u32, height: u32, colour: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(width, height, Rgb(colour)).save(path).unwrap();
    }

    #[test]
    fn sub_folders_are_classes() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("shoes/b.png"), 10, 7, [255, 0, 0]);
        write_png(&dir.path().join("shoes/a.PNG"), 40, 30, [0, 255, 0]);
        write_png(&dir.path().join("bags/x.png"), 5, 5, [0, 0, 255]);
        RgbImage::from_pixel(9, 9, Rgb([0, 0, 0])).save(dir.path().join("bags/photo.JPG")).unwrap();
        std::fs::write(dir.path().join("bags/notes.txt"), "not an image").unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();

        let data = load_folder(dir.path(), 8, 6, 3).unwrap().data;
        assert_eq!((data.count, data.channels, data.height, data.width), (4, 3, 8, 6));
        assert_eq!(data.images.len(), 4 * 3 * 8 * 6);
        assert_eq!(data.class_names, ["bags", "shoes"]);
        assert_eq!(data.labels, Some(vec![0, 0, 1, 1]));
        // Sorted paths: bags/photo.JPG, bags/x.png, shoes/a.PNG, shoes/b.png; planes are [channel][row][col].
        let plane = 8 * 6;
        let blue = data.image(1);
        assert!(blue[..2 * plane].iter().all(|&x| x == -1.0) && blue[2 * plane..].iter().all(|&x| x == 1.0));
        let red = data.image(3);
        assert!(red[..plane].iter().all(|&x| x == 1.0) && red[plane..].iter().all(|&x| x == -1.0));
    }

    #[test]
    fn flat_folder_is_unlabelled() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("one.png"), 3, 4, [255, 255, 255]);
        write_png(&dir.path().join("two.png"), 20, 20, [0, 0, 0]);
        let data = load_folder(dir.path(), 5, 5, 1).unwrap().data;
        assert_eq!((data.count, data.channels, data.images.len()), (2, 1, 2 * 25));
        assert_eq!((&data.labels, data.class_names.len(), data.label(0)), (&None, 0, None));
        assert!(data.image(0).iter().all(|&x| x == 1.0) && data.image(1).iter().all(|&x| x == -1.0));
    }

    #[test]
    fn one_image_loads_resized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.png");
        write_png(&path, 64, 40, [255, 255, 255]);
        let values = load_image(&path, 28, 28, 1).unwrap();
        assert_eq!(values.len(), 28 * 28);
        assert!(values.iter().all(|&x| x == 1.0));
        assert!(matches!(load_image(&path, 28, 28, 2), Err(DataError::BadShape { .. })));
        assert!(matches!(load_image(&dir.path().join("none.png"), 28, 28, 1), Err(DataError::Io { .. })));
    }

    #[test]
    fn bad_files_are_listed_and_skipped_never_fatal() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("cats/good.png"), 4, 4, [1, 2, 3]);
        write_png(&dir.path().join("dogs/good.png"), 4, 4, [200, 200, 200]);
        std::fs::write(dir.path().join("cats/empty.png"), b"").unwrap();
        std::fs::write(dir.path().join("cats/text ü.jpg"), b"not really a jpeg").unwrap();
        // A real PNG header that claims 20000 x 20000 pixels, and nothing after it.
        let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        huge.extend_from_slice(&20000u32.to_be_bytes());
        huge.extend_from_slice(&20000u32.to_be_bytes());
        huge.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        std::fs::write(dir.path().join("dogs/huge.png"), &huge).unwrap();
        let folder = load_folder(dir.path(), 4, 4, 3).unwrap();
        assert_eq!(folder.data.count, 2);
        assert_eq!(folder.data.labels, Some(vec![0, 1]), "labels follow the images that loaded");
        let names: Vec<String> =
            folder.skipped.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["empty.png", "text ü.jpg", "huge.png"]);
        assert!(
            folder.skipped.iter().all(|(p, reason)| reason.contains(&p.display().to_string())),
            "{:?}",
            folder.skipped
        );
        // Nothing usable at all is an error.
        let only_bad = tempfile::tempdir().unwrap();
        std::fs::write(only_bad.path().join("broken.png"), b"not really a png").unwrap();
        assert!(matches!(load_folder(only_bad.path(), 4, 4, 3), Err(DataError::NoImages { .. })));
    }

    #[test]
    fn empty_missing_mixed_and_bad_shape_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("readme.txt"), "no images here").unwrap();
        let err = load_folder(dir.path(), 8, 8, 1).unwrap_err();
        assert!(matches!(err, DataError::NoImages { .. }), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");

        let missing = dir.path().join("missing");
        let err = load_folder(&missing, 8, 8, 1).unwrap_err();
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");

        write_png(&dir.path().join("cats/a.png"), 4, 4, [0, 0, 0]);
        write_png(&dir.path().join("stray.png"), 4, 4, [0, 0, 0]);
        let text = load_folder(dir.path(), 8, 8, 1).unwrap_err().to_string();
        assert!(text.contains("mix of labelled and unlabelled") && text.contains("stray.png"), "{text}");

        for (height, width, channels) in [(8, 8, 2), (0, 8, 3), (8, 0, 1)] {
            let err = load_folder(dir.path(), height, width, channels).unwrap_err();
            assert!(matches!(err, DataError::BadShape { .. }), "{err}");
        }
    }
}
