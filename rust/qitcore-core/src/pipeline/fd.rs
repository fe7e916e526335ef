//! Reading a device file descriptor (a serial port or pty that pyserial opened and configured)
//! on a Rust thread, so that no Python runs in the data path. Reads wait at most 50 ms in
//! `poll`, so that a closed stream's reader thread notices within that time even when the device
//! has gone quiet.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};

/// A readable descriptor with a poll timeout.
pub struct FdReader {
    fd: OwnedFd,
}

impl FdReader {
    pub fn new(fd: OwnedFd) -> Self {
        FdReader { fd }
    }
}

impl Read for FdReader {
    /// Bytes when some are ready; `TimedOut` after 50 ms without any; an error when the device
    /// went away (EIO, ENXIO, or a hang-up with nothing left to read).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let raw = self.fd.as_raw_fd();
        let mut pfd = libc::pollfd { fd: raw, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        if ready == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no data within 50 ms"));
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes; `raw` is an open descriptor
        // owned by `self.fd`.
        let n = unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            n if n > 0 => Ok(n as usize),
            0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the device closed")),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::FromRawFd;

    #[test]
    fn reads_times_out_and_reports_the_writer_gone() {
        let mut fds = [0i32; 2];
        // SAFETY: a two-element array for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors were just created and are owned here only.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut reader = FdReader::new(r);
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap_err().kind(), io::ErrorKind::TimedOut);
        let mut writer = std::fs::File::from(w);
        writer.write_all(b"abc").unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        drop(writer);
        assert_eq!(reader.read(&mut buf).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
