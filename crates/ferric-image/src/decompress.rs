//! Streaming decoders for compressed raw images, all pure Rust: gzip
//! (miniz_oxide through flate2, concatenated members), xz (lzma-rust2,
//! concatenated streams and padding) and zstd (ruzstd, concatenated and
//! skippable frames, content checksums verified).

use std::io::{self, BufRead, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::ImageFormat;

/// The largest zstd window accepted (zstd's own default limit for
/// decompression is 128 MiB; `zstd --long=31` images are refused).
const MAX_ZSTD_WINDOW: u64 = 1 << 27;

/// The most memory an xz stream may ask for (`xz -9e` needs 65 MiB).
const XZ_MEMORY_LIMIT_KIB: u32 = 256 << 10;

/// A reader of the decompressed bytes of `input` in `format`
/// (the input itself for [`ImageFormat::Raw`]).
pub fn decoder<'a, R: BufRead + Send + 'a>(
    format: ImageFormat,
    input: R,
) -> Box<dyn Read + Send + 'a> {
    match format {
        ImageFormat::Raw | ImageFormat::Qcow2 => Box::new(input),
        ImageFormat::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        ImageFormat::Xz => {
            Box::new(lzma_rust2::XzReader::new_mem_limit(input, true, XZ_MEMORY_LIMIT_KIB))
        }
        ImageFormat::Zstd => Box::new(ZstdFrames::new(input)),
    }
}

/// Decodes every frame of a zstd stream, skipping skippable frames.
pub struct ZstdFrames<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    pub fn new(source: R) -> Self {
        let mut decoder = FrameDecoder::new();
        decoder.set_max_window_size(MAX_ZSTD_WINDOW);
        Self { source, decoder, in_frame: false }
    }

    /// Starts the next frame; false at the end of the input.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.source).take(u64::from(length)), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd skippable frame is truncated",
                        ));
                    }
                }
                Err(error) => return Err(io::Error::other(error)),
            }
        }
    }

    fn check_frame_checksum(&self) -> io::Result<()> {
        match (self.decoder.get_checksum_from_data(), self.decoder.get_calculated_checksum()) {
            (Some(stored), Some(computed)) if stored != computed => Err(io::Error::other(format!(
                "zstd frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ))),
            _ => Ok(()),
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| match e {
                        FrameDecoderError::FailedToReadBlockHeader(_) => io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("zstd frame ends early: {e}"),
                        ),
                        other => io::Error::other(other),
                    })?;
            }
            let read = self.decoder.read(buf)?;
            if read > 0 {
                return Ok(read);
            }
            // The frame is finished and drained.
            self.check_frame_checksum()?;
            self.in_frame = false;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode(format: ImageFormat, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(format, data).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn zstd_frames_are_concatenated_and_skippable_frames_skipped() {
        let first = ruzstd::encoding::compress_to_vec(
            &b"hello "[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let second = ruzstd::encoding::compress_to_vec(
            &b"world"[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let mut skippable = 0x184D_2A50u32.to_le_bytes().to_vec();
        skippable.extend_from_slice(&3u32.to_le_bytes());
        skippable.extend_from_slice(b"abc");
        let stream = [first.clone(), skippable, second].concat();
        assert_eq!(decode(ImageFormat::Zstd, &stream).unwrap(), b"hello world");
        // Truncation is an error, not a short image.
        assert!(decode(ImageFormat::Zstd, &first[..first.len() - 2]).is_err());
    }

    #[test]
    fn gzip_members_are_concatenated() {
        use std::io::Write;
        let mut stream = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(part).unwrap();
            stream.extend(encoder.finish().unwrap());
        }
        assert_eq!(decode(ImageFormat::Gzip, &stream).unwrap(), b"hello world");
        assert!(decode(ImageFormat::Gzip, &stream[..stream.len() - 4]).is_err());
    }
}
