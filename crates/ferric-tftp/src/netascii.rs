//! On-the-fly netascii encoding (RFC 764 as used by RFC 1350): the file is
//! assumed to use Unix line ends, so LF goes out as CR LF and a bare CR as
//! CR NUL. The encoded length is not known in advance, so netascii
//! transfers do not acknowledge `tsize`.

use std::io::{self, Read};

/// Wraps a reader and yields its netascii encoding.
pub struct NetasciiReader<R> {
    inner: R,
    buffer: Box<[u8]>,
    position: usize,
    filled: usize,
    /// The second byte of an expansion that did not fit the caller's buffer.
    pending: Option<u8>,
}

impl<R: Read> NetasciiReader<R> {
    /// Encodes what `inner` yields.
    pub fn new(inner: R) -> Self {
        NetasciiReader {
            inner,
            buffer: vec![0; 8 * 1024].into_boxed_slice(),
            position: 0,
            filled: 0,
            pending: None,
        }
    }
}

impl<R: Read> Read for NetasciiReader<R> {
    fn read(&mut self, output: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < output.len() {
            if let Some(byte) = self.pending.take() {
                output[written] = byte;
                written += 1;
                continue;
            }
            if self.position == self.filled {
                // Only block on the inner reader when nothing is ready yet.
                if written > 0 {
                    break;
                }
                self.filled = self.inner.read(&mut self.buffer)?;
                self.position = 0;
                if self.filled == 0 {
                    break;
                }
            }
            let byte = self.buffer[self.position];
            self.position += 1;
            output[written] = match byte {
                b'\n' => {
                    self.pending = Some(b'\n');
                    b'\r'
                }
                b'\r' => {
                    self.pending = Some(0);
                    b'\r'
                }
                other => other,
            };
            written += 1;
        }
        Ok(written)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut reader = NetasciiReader::new(input);
        let mut output = Vec::new();
        let mut buffer = vec![0; chunk];
        loop {
            let read = reader.read(&mut buffer).unwrap();
            if read == 0 {
                return output;
            }
            output.extend_from_slice(&buffer[..read]);
        }
    }

    fn reference(input: &[u8]) -> Vec<u8> {
        let mut output = Vec::new();
        for &byte in input {
            match byte {
                b'\n' => output.extend_from_slice(b"\r\n"),
                b'\r' => output.extend_from_slice(b"\r\0"),
                other => output.push(other),
            }
        }
        output
    }

    #[test]
    fn expands_line_feeds_and_bare_carriage_returns() {
        assert_eq!(encode(b"a\nb\rc\r\n", 512), b"a\r\nb\r\0c\r\0\r\n");
        assert_eq!(encode(b"", 512), b"");
    }

    #[test]
    fn expansions_split_across_reads() {
        assert_eq!(encode(b"\n\n\r", 1), b"\r\n\r\n\r\0");
    }

    proptest! {
        #[test]
        fn matches_the_reference_encoding_for_any_read_size(
            raw in prop::collection::vec(any::<u8>(), 0..20_000),
            chunk in 1usize..1500,
        ) {
            // Plenty of line ends: one byte value in eight becomes LF or CR.
            let input: Vec<u8> = raw
                .iter()
                .map(|&byte| match byte % 16 {
                    0 => b'\n',
                    1 => b'\r',
                    _ => byte,
                })
                .collect();
            prop_assert_eq!(encode(&input, chunk), reference(&input));
        }
    }
}
