//! Unbuffered writers on file descriptors 1 and 2. The pumps buffer and flush at chunk
//! boundaries themselves; going through `std::io::stdout()` would add a second, line-based
//! buffer and a syscall per line.

use std::io::{self, Write};

pub struct RawFd(libc::c_int);

pub fn stdout() -> RawFd {
    RawFd(1)
}

pub fn stderr() -> RawFd {
    RawFd(2)
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
