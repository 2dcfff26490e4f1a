//! Unbuffered writers on file descriptors 1 and 2. The pumps buffer and flush at chunk
//! boundaries themselves; going through `std::io::stdout()` would add a second, line-based
//! buffer and a syscall per line.

use std::io::{self, Write};

pub struct RawFd(libc::c_int);

/// A script's output on its way to our stdout/stderr: written around the live view's lines.
pub struct Console(RawFd);

pub fn stdout() -> Console {
    Console(RawFd(1))
}

pub fn stderr() -> Console {
    Console(RawFd(2))
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::view::write_around_live(&mut self.0, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for RawFd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: writing from a valid slice to a descriptor we do not own or close.
        let n = unsafe { libc::write(self.0, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
