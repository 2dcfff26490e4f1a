//! The loops that read a training script's stdout and stderr, each on a dedicated thread.
//!
//! Both loops read raw bytes in chunks and never stop reading before EOF because of a write
//! error: the child must never block on a full pipe. A passthrough (our own terminal) that went
//! away with `BrokenPipe` is silently dropped; any other write error is returned after the reader
//! reached EOF.

use std::io::{self, BufWriter, ErrorKind, Read, Write};

use memchr::memmem;

use crate::protocol::{MAX_LINE_BYTES, Parsed, Progress, parse_line};

/// Size of one read.
const CHUNK: usize = 64 * 1024;

/// How [`pump_stdout`] treats protocol lines.
#[derive(Debug, Clone, Default)]
pub struct PumpOptions {
    /// Also pass protocol lines through (they always go to the log and the metrics file).
    pub echo_protocol: bool,
    /// Written into every metrics line as `"attempt"`.
    pub attempt: u32,
}

/// What the protocol lines of one read brought.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Progress seen in this chunk, merged: the latest step, loss and value of each metric.
    pub progress: Option<Progress>,
    /// Checkpoint paths, in order, as written (duplicates not removed).
    pub checkpoints: Vec<String>,
    /// Event names, in order.
    pub events: Vec<String>,
    /// Lines (protocol or not) completed since the previous batch was handed over, this
    /// batch's included; summing `lines` over all batches counts every line up to the last one.
    pub lines: u64,
}

impl Batch {
    fn has_news(&self) -> bool {
        self.progress.is_some() || !self.checkpoints.is_empty() || !self.events.is_empty()
    }
}

/// A buffered writer that is dropped at its first error, which is remembered unless it is a
/// tolerated `BrokenPipe`.
struct Tap<W: Write> {
    inner: Option<BufWriter<W>>,
    tolerate_broken_pipe: bool,
}

impl<W: Write> Tap<W> {
    fn new(w: W, tolerate_broken_pipe: bool) -> Self {
        Tap {
            inner: Some(BufWriter::with_capacity(CHUNK, w)),
            tolerate_broken_pipe,
        }
    }

    #[inline]
    fn alive(&self) -> bool {
        self.inner.is_some()
    }

    #[inline]
    fn write(&mut self, data: &[u8], error: &mut Option<io::Error>) {
        if let Some(w) = &mut self.inner
            && let Err(e) = w.write_all(data)
        {
            self.fail(e, error);
        }
    }

    fn flush(&mut self, error: &mut Option<io::Error>) {
        if let Some(w) = &mut self.inner
            && let Err(e) = w.flush()
        {
            self.fail(e, error);
        }
    }

    fn fail(&mut self, e: io::Error, error: &mut Option<io::Error>) {
        if let Some(w) = self.inner.take() {
            // Drop without BufWriter's flush-on-drop: the writer is broken.
            drop(w.into_parts());
        }
        if !(self.tolerate_broken_pipe && e.kind() == ErrorKind::BrokenPipe) && error.is_none() {
            *error = Some(e);
        }
    }
}

/// Reads into `buf`, retrying on `Interrupted`.
fn read_chunk(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Per-line work of [`pump_stdout`]: everything but the reader, the carry-over and the log.
struct LineHandler<'o, P: Write, M: Write, T: FnMut() -> u64> {
    passthrough: Tap<P>,
    metrics: Tap<M>,
    opts: &'o PumpOptions,
    now_ms: T,
    /// `{"time":<ms>,"attempt":<n>` for the current chunk, made at its first protocol line.
    prefix: Vec<u8>,
    batch: Batch,
    error: Option<io::Error>,
}

impl<P: Write, M: Write, T: FnMut() -> u64> LineHandler<'_, P, M, T> {
    /// One whole line, with its `\n` unless it is the last line of the stream.
    fn line(&mut self, full: &[u8]) {
        self.batch.lines += 1;
        let content = full.strip_suffix(b"\n").unwrap_or(full);
        let message = match parse_line(content) {
            Parsed::Output => {
                self.passthrough.write(full, &mut self.error);
                return;
            }
            Parsed::Message(message) => message,
        };
        if self.opts.echo_protocol {
            self.passthrough.write(full, &mut self.error);
        }
        if self.metrics.alive() {
            self.metrics_line(content);
        }
        if let Some(progress) = message.progress {
            match &mut self.batch.progress {
                Some(merged) => merged.merge(progress),
                None => self.batch.progress = Some(progress),
            }
        }
        self.batch.checkpoints.extend(message.checkpoint);
        self.batch.events.extend(message.event);
    }

    /// Appends the object with `"time"` and `"attempt"` spliced in after its `{`.
    fn metrics_line(&mut self, content: &[u8]) {
        if self.prefix.is_empty() {
            let now = (self.now_ms)();
            write!(
                self.prefix,
                "{{\"time\":{now},\"attempt\":{}",
                self.opts.attempt
            )
            .expect("writing to a Vec");
        }
        let object = content.trim_ascii();
        // A protocol line is a trimmed object: it starts with `{` and ends with `}`.
        let inside = &object[1..];
        let empty = inside.trim_ascii_start().starts_with(b"}");
        let e = &mut self.error;
        self.metrics.write(&self.prefix, e);
        if empty {
            self.metrics.write(b"}\n", e);
        } else {
            self.metrics.write(b",", e);
            self.metrics.write(inside, e);
            self.metrics.write(b"\n", e);
        }
    }

    /// End of one read: flush and hand the batch over when it has news.
    fn chunk_done(&mut self, sink: &mut impl FnMut(Batch)) {
        self.passthrough.flush(&mut self.error);
        self.metrics.flush(&mut self.error);
        self.prefix.clear();
        if self.batch.has_news() {
            sink(std::mem::take(&mut self.batch));
        }
    }
}

/// Reads a child's stdout to EOF.
///
/// Every byte read goes to `log` unchanged. Lines that are not protocol lines (see
/// [`parse_line`]) go to `passthrough` exactly as written; protocol lines go there only with
/// [`PumpOptions::echo_protocol`], and are appended to `metrics` as JSONL with
/// `"time":<now_ms()>,"attempt":<n>` spliced in as the first fields (`now_ms` is called at most
/// once per read). A line longer than [`MAX_LINE_BYTES`] is streamed to `passthrough` as it
/// arrives and never buffered whole. After each read, the writers are flushed and `sink` gets the
/// [`Batch`] when it has progress, checkpoints or events.
///
/// A `BrokenPipe` on `passthrough` only stops the passthrough. Any other write error stops that
/// writer and is returned once the reader reached EOF. A read error is returned at once.
pub fn pump_stdout<R: Read, P: Write, L: Write, M: Write>(
    mut reader: R,
    passthrough: P,
    log: L,
    metrics: M,
    opts: &PumpOptions,
    now_ms: impl FnMut() -> u64,
    mut sink: impl FnMut(Batch),
) -> io::Result<()> {
    let mut log = Tap::new(log, false);
    let mut h = LineHandler {
        passthrough: Tap::new(passthrough, true),
        metrics: Tap::new(metrics, false),
        opts,
        now_ms,
        prefix: Vec::with_capacity(64),
        batch: Batch::default(),
        error: None,
    };
    let mut buf = vec![0u8; CHUNK];
    // The start of a line whose end has not been read yet; never longer than MAX_LINE_BYTES + 1
    // (a trailing `\r` is allowed on a protocol line) before its newline arrives.
    let mut pending: Vec<u8> = Vec::new();
    // Inside a line too long to be a protocol line: stream it until its newline.
    let mut oversize = false;
    loop {
        let n = match read_chunk(&mut reader, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                log.flush(&mut h.error);
                h.chunk_done(&mut sink);
                return Err(e);
            }
        };
        let chunk = &buf[..n];
        log.write(chunk, &mut h.error);
        let mut rest = chunk;
        while !rest.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                if oversize {
                    h.passthrough.write(rest, &mut h.error);
                } else if pending.len() + rest.len() > MAX_LINE_BYTES + 1 {
                    h.passthrough.write(&pending, &mut h.error);
                    h.passthrough.write(rest, &mut h.error);
                    pending = Vec::new(); // give the memory back
                    oversize = true;
                } else {
                    pending.extend_from_slice(rest);
                }
                break;
            };
            let (line, tail) = rest.split_at(nl + 1);
            rest = tail;
            if oversize {
                h.passthrough.write(line, &mut h.error);
                h.batch.lines += 1;
                oversize = false;
            } else if pending.is_empty() {
                h.line(line);
            } else {
                pending.extend_from_slice(line);
                h.line(&pending);
                pending.clear();
            }
        }
        log.flush(&mut h.error);
        h.chunk_done(&mut sink);
    }
    // EOF: a last line without its newline is still a line.
    if oversize {
        h.batch.lines += 1;
    } else if !pending.is_empty() {
        h.line(&pending);
    }
    log.flush(&mut h.error);
    h.chunk_done(&mut sink);
    match h.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Messages that mean a CUDA (or XLA) device ran out of memory.
pub const CUDA_OOM_PATTERNS: [&str; 5] = [
    "CUDA out of memory",
    "CUDA error: out of memory",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "OutOfMemoryError",
    "RESOURCE_EXHAUSTED: Out of memory",
];

/// The arguments the original backprop tool gave every script. A script whose stderr names
/// them (argparse: "the following arguments are required: --run-id, --max-minutes") was
/// probably written for it.
pub const LEGACY_ARG_PATTERNS: [&str; 2] = ["--run-id", "--max-minutes"];

/// Something on a script's stderr that backprop acts on; each is reported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StderrNotice {
    /// A CUDA out-of-memory message: a failure is recorded as `cuda_oom`.
    CudaOom,
    /// One of [`LEGACY_ARG_PATTERNS`]: a quick failure gets a hint about `--legacy-args`.
    LegacyArgs,
}

/// Finds any of a set of patterns in a stream fed in arbitrary pieces.
pub struct PatternScanner {
    finders: Vec<memmem::Finder<'static>>,
    /// The last `longest - 1` bytes seen, to catch a message split across reads.
    tail: Vec<u8>,
    keep: usize,
    window: Vec<u8>,
}

impl PatternScanner {
    pub fn new(patterns: &[&'static str]) -> Self {
        let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(1);
        PatternScanner {
            finders: patterns
                .iter()
                .map(|p| memmem::Finder::new(p.as_bytes()))
                .collect(),
            tail: Vec::with_capacity(longest),
            keep: longest - 1,
            window: Vec::with_capacity(2 * longest),
        }
    }

    fn found_in(&self, hay: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(hay).is_some())
    }

    /// Whether a pattern appears in the stream once `chunk` is appended to it (checking only
    /// where `chunk` could complete one).
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut found = false;
        if !self.tail.is_empty() {
            self.window.clear();
            self.window.extend_from_slice(&self.tail);
            self.window
                .extend_from_slice(&chunk[..chunk.len().min(self.keep)]);
            found = self.found_in(&self.window);
        }
        found = found || self.found_in(chunk);
        if chunk.len() >= self.keep {
            self.tail.clear();
            self.tail
                .extend_from_slice(&chunk[chunk.len() - self.keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(self.keep);
            self.tail.drain(..excess);
        }
        found
    }
}

/// Reads a child's stderr to EOF.
///
/// Bytes go to `passthrough` and to `log` unchanged, each read written and flushed as it arrives
/// (no line buffering, so `\r` progress bars look as they should). `on_notice` is called once
/// for each [`StderrNotice`], at its first message, even one split across reads. Write errors
/// are handled as in [`pump_stdout`].
pub fn pump_stderr<R: Read, P: Write, L: Write>(
    mut reader: R,
    passthrough: P,
    log: L,
    mut on_notice: impl FnMut(StderrNotice),
) -> io::Result<()> {
    let mut passthrough = Tap::new(passthrough, true);
    let mut log = Tap::new(log, false);
    let mut error = None;
    let mut watches = vec![
        (
            StderrNotice::CudaOom,
            PatternScanner::new(&CUDA_OOM_PATTERNS),
        ),
        (
            StderrNotice::LegacyArgs,
            PatternScanner::new(&LEGACY_ARG_PATTERNS),
        ),
    ];
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match read_chunk(&mut reader, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                passthrough.flush(&mut error);
                log.flush(&mut error);
                return Err(e);
            }
        };
        let chunk = &buf[..n];
        passthrough.write(chunk, &mut error);
        passthrough.flush(&mut error);
        log.write(chunk, &mut error);
        log.flush(&mut error);
        watches.retain_mut(|(notice, scanner)| {
            let found = scanner.feed(chunk);
            if found {
                on_notice(*notice);
            }
            !found
        });
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Yields its data in pieces of the given sizes (cycled), then EOF.
    struct Pieces {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        turn: usize,
        /// Largest buffer the pump offered (for the bounded-memory check).
        max_request: usize,
    }

    impl Pieces {
        fn new(data: impl Into<Vec<u8>>, sizes: &[usize]) -> Self {
            Pieces {
                data: data.into(),
                pos: 0,
                sizes: sizes.to_vec(),
                turn: 0,
                max_request: 0,
            }
        }
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.max_request = self.max_request.max(buf.len());
            let size = self.sizes[self.turn % self.sizes.len()];
            self.turn += 1;
            let n = size.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// A shared in-memory writer, inspectable after the pump consumed its handle.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.borrow()).into_owned()
        }
        fn bytes(&self) -> Vec<u8> {
            self.0.borrow().clone()
        }
    }

    /// A writer that always fails with the given kind, counting attempts.
    struct Failing(ErrorKind, Rc<RefCell<usize>>);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            *self.1.borrow_mut() += 1;
            Err(io::Error::from(self.0))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Run {
        passthrough: Shared,
        log: Shared,
        metrics: Shared,
        batches: Vec<Batch>,
        result: io::Result<()>,
    }

    fn run_with(reader: impl Read, echo: bool) -> Run {
        let (passthrough, log, metrics) = (Shared::default(), Shared::default(), Shared::default());
        let mut batches = Vec::new();
        let mut clock = 1000;
        let result = pump_stdout(
            reader,
            passthrough.clone(),
            log.clone(),
            metrics.clone(),
            &PumpOptions {
                echo_protocol: echo,
                attempt: 2,
            },
            || {
                clock += 1;
                clock
            },
            |b| batches.push(b),
        );
        Run {
            passthrough,
            log,
            metrics,
            batches,
            result,
        }
    }

    fn run(data: &str, sizes: &[usize]) -> Run {
        run_with(Pieces::new(data, sizes), false)
    }

    const MIXED: &str = "Epoch 1/3\n\
        {\"step\": 1, \"loss\": 0.9, \"lr\": 0.1}\n\
        some output\r\n\
        {\"event\": \"checkpoint_saved\", \"path\": \"c1.pt\", \"step\": 2}\n\
        {\"step\": 3, \"loss\": NaN}\n\
        [1, 2]\n\
        {}\n\
        {\"event\": \"eval\"}\n\
        done";

    #[test]
    fn classifies_and_passes_through() {
        let r = run(MIXED, &[CHUNK]);
        r.result.unwrap();
        assert_eq!(r.log.text(), MIXED);
        assert_eq!(
            r.passthrough.text(),
            "Epoch 1/3\nsome output\r\n[1, 2]\ndone"
        );
        assert_eq!(r.batches.len(), 1);
        let b = &r.batches[0];
        let p = b.progress.as_ref().unwrap();
        assert_eq!(p.step, Some(3));
        assert!(p.loss.unwrap().is_nan());
        assert_eq!(b.checkpoints, ["c1.pt"]);
        assert_eq!(b.events, ["message", "eval"]);
        assert_eq!(b.lines, 8, "the unterminated last line completes at EOF");
        assert_eq!(
            r.metrics.text(),
            "{\"time\":1001,\"attempt\":2,\"step\": 1, \"loss\": 0.9, \"lr\": 0.1}\n\
             {\"time\":1001,\"attempt\":2,\"event\": \"checkpoint_saved\", \"path\": \"c1.pt\", \"step\": 2}\n\
             {\"time\":1001,\"attempt\":2,\"step\": 3, \"loss\": NaN}\n\
             {\"time\":1001,\"attempt\":2}\n\
             {\"time\":1001,\"attempt\":2,\"event\": \"eval\"}\n"
        );
    }

    #[test]
    fn echo_protocol_passes_everything() {
        let r = run_with(Pieces::new(MIXED, &[7]), true);
        r.result.unwrap();
        assert_eq!(r.passthrough.text(), MIXED);
        assert_eq!(r.log.text(), MIXED);
    }

    #[test]
    fn any_piece_size_gives_the_same_result() {
        let whole = run(MIXED, &[CHUNK]);
        for sizes in [&[1][..], &[2], &[3, 1, 17], &[5, 64]] {
            let r = run(MIXED, sizes);
            r.result.unwrap();
            assert_eq!(r.log.text(), MIXED);
            assert_eq!(r.passthrough.text(), whole.passthrough.text());
            let strip_time = |s: String| {
                s.lines()
                    .map(|l| l.split_once(",\"attempt\"").unwrap().1.to_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                strip_time(r.metrics.text()),
                strip_time(whole.metrics.text())
            );
            let checkpoints: Vec<String> = r
                .batches
                .iter()
                .flat_map(|b| b.checkpoints.clone())
                .collect();
            assert_eq!(checkpoints, ["c1.pt"]);
            let events: Vec<String> = r.batches.iter().flat_map(|b| b.events.clone()).collect();
            assert_eq!(events, ["message", "eval"]);
            let last_progress = r.batches.iter().rev().find_map(|b| b.progress.as_ref());
            assert_eq!(last_progress.unwrap().step, Some(3));
            // Every batch carries news; lines add up to the line of the last batch (the 8th).
            assert!(r.batches.iter().all(Batch::has_news));
            assert_eq!(
                r.batches.iter().map(|b| b.lines).sum::<u64>(),
                8,
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn one_batch_per_read_with_last_progress() {
        let data = "{\"step\": 1}\n{\"step\": 2}\nplain\n{\"step\": 3}\n";
        let r = run(data, &[24, 6, 100]);
        let steps: Vec<Option<u64>> = r
            .batches
            .iter()
            .map(|b| b.progress.as_ref().unwrap().step)
            .collect();
        assert_eq!(steps, [Some(2), Some(3)]);
        assert_eq!(r.batches[0].lines, 2);
        assert_eq!(r.batches[1].lines, 2);
    }

    #[test]
    fn time_is_taken_per_read() {
        let r = run("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n", &[16, 100]);
        assert_eq!(
            r.metrics.text(),
            "{\"time\":1001,\"attempt\":2,\"a\":1}\n\
             {\"time\":1001,\"attempt\":2,\"b\":2}\n\
             {\"time\":1002,\"attempt\":2,\"c\":3}\n"
        );
    }

    #[test]
    fn splice_keeps_the_object_text() {
        let r = run(
            "{}\n  { }  \r\n{\"loss\":-Infinity,\"n\":\"NaN\"}\r\n\t{ \"x\" : 1 }\n",
            &[CHUNK],
        );
        assert_eq!(
            r.metrics.text(),
            "{\"time\":1001,\"attempt\":2}\n\
             {\"time\":1001,\"attempt\":2}\n\
             {\"time\":1001,\"attempt\":2,\"loss\":-Infinity,\"n\":\"NaN\"}\n\
             {\"time\":1001,\"attempt\":2, \"x\" : 1 }\n"
        );
        // Each metrics line is valid JSON once NaN/Infinity are allowed.
        for line in r.metrics.text().lines() {
            assert!(
                matches!(parse_line(line.as_bytes()), Parsed::Message(_)),
                "{line}"
            );
        }
    }

    #[test]
    fn partial_final_line() {
        let r = run("plain\n{\"step\": 9, \"loss\": 1}", &[4]);
        r.result.unwrap();
        assert_eq!(r.passthrough.text(), "plain\n");
        assert_eq!(
            r.batches.last().unwrap().progress.as_ref().unwrap().step,
            Some(9)
        );
        assert_eq!(
            r.metrics.text(),
            "{\"time\":1001,\"attempt\":2,\"step\": 9, \"loss\": 1}\n"
        );
        let r = run("a\nno newline at the end", &[3]);
        assert_eq!(r.passthrough.text(), "a\nno newline at the end");
    }

    #[test]
    fn invalid_utf8_and_binary_pass_through_raw() {
        let mut data = b"\xff\xfe\x00binary\n{\"loss\": \"\xc3\"}\n".to_vec();
        data.extend_from_slice(b"{\"loss\": 1}\n");
        let r = run_with(Pieces::new(data.clone(), &[5]), false);
        assert_eq!(r.log.bytes(), data);
        assert_eq!(
            r.passthrough.bytes(),
            b"\xff\xfe\x00binary\n{\"loss\": \"\xc3\"}\n"
        );
        assert_eq!(r.batches.len(), 1);
    }

    #[test]
    fn line_at_the_limit_is_parsed() {
        let mut line = String::from("{\"loss\": 1, \"pad\": \"");
        let fill = MAX_LINE_BYTES - line.len() - 2;
        line.extend(std::iter::repeat_n('x', fill));
        line.push_str("\"}");
        let data = format!("{line}\r\n{line}");
        let r = run(&data, &[CHUNK]);
        assert_eq!(r.passthrough.text(), "");
        assert_eq!(r.metrics.text().lines().count(), 2);
    }

    #[test]
    fn oversize_line_streams_through() {
        // A protocol-looking object just over the limit is output, streamed as it arrives.
        let mut line = String::from("{\"loss\": 1, \"pad\": \"");
        line.extend(std::iter::repeat_n('x', MAX_LINE_BYTES));
        line.push_str("\"}");
        let data = format!("{line}\n{{\"step\": 5}}\n{line}");
        let r = run(&data, &[1000, CHUNK]);
        r.result.unwrap();
        assert_eq!(r.log.text(), data);
        assert_eq!(r.passthrough.text(), format!("{line}\n{line}"));
        assert_eq!(
            r.metrics.text(),
            format!("{{\"time\":1001,\"attempt\":2,\"step\": 5}}\n")
        );
        assert_eq!(r.batches.len(), 1);
    }

    #[test]
    fn ten_megabytes_without_newline_stays_bounded() {
        let mut data = vec![b'{'; 10 << 20];
        data.extend_from_slice(b"\n{\"step\": 1}\n");
        let pt = Shared::default();
        let log = Shared::default();
        let metrics = Shared::default();
        let mut reader = Pieces::new(data.clone(), &[4096, 65536, 1]);
        let mut batches = Vec::new();
        // Watch the passthrough grow while the line is still incomplete: it is streamed, not held.
        let seen_before_newline = Rc::new(RefCell::new(0usize));
        struct Watch(Shared, Rc<RefCell<usize>>);
        impl Write for Watch {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let len = self.0.0.borrow().len() + buf.len();
                if !buf.contains(&b'\n') {
                    *self.1.borrow_mut() = len;
                }
                self.0.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        pump_stdout(
            &mut reader,
            Watch(pt.clone(), seen_before_newline.clone()),
            log.clone(),
            metrics.clone(),
            &PumpOptions::default(),
            || 0,
            |b| batches.push(b),
        )
        .unwrap();
        assert_eq!(log.bytes(), data);
        assert_eq!(pt.bytes(), &data[..(10 << 20) + 1]);
        assert!(*seen_before_newline.borrow() >= (10 << 20) - CHUNK);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].progress.as_ref().unwrap().step, Some(1));
        // Bounded by construction: reads never exceed CHUNK, and `pending` is flushed to the
        // passthrough as soon as it would exceed MAX_LINE_BYTES + 1 bytes.
        assert_eq!(reader.max_request, CHUNK);
    }

    #[test]
    fn broken_pipe_passthrough_keeps_logging_and_parsing() {
        let attempts = Rc::new(RefCell::new(0));
        let (log, metrics) = (Shared::default(), Shared::default());
        let mut batches = Vec::new();
        let data = "hello\n".repeat(20_000) + "{\"step\": 42}\n" + &"tail\n".repeat(20_000);
        let result = pump_stdout(
            Pieces::new(data.clone(), &[1000]),
            Failing(ErrorKind::BrokenPipe, attempts.clone()),
            log.clone(),
            metrics.clone(),
            &PumpOptions::default(),
            || 0,
            |b| batches.push(b),
        );
        result.unwrap();
        assert_eq!(log.text(), data);
        assert_eq!(metrics.text(), "{\"time\":0,\"attempt\":0,\"step\": 42}\n");
        assert_eq!(batches[0].progress.as_ref().unwrap().step, Some(42));
        // The dead passthrough is not retried.
        assert_eq!(*attempts.borrow(), 1);
    }

    #[test]
    fn log_error_is_returned_after_draining() {
        let attempts = Rc::new(RefCell::new(0));
        let (pt, metrics) = (Shared::default(), Shared::default());
        let data = "x\n".repeat(100_000) + "{\"step\": 1}\n";
        let mut reader = Pieces::new(data.clone(), &[CHUNK]);
        let mut batches = Vec::new();
        let result = pump_stdout(
            &mut reader,
            pt.clone(),
            Failing(ErrorKind::StorageFull, attempts.clone()),
            metrics.clone(),
            &PumpOptions::default(),
            || 0,
            |b| batches.push(b),
        );
        assert_eq!(result.unwrap_err().kind(), ErrorKind::StorageFull);
        assert_eq!(reader.pos, data.len(), "reader drained to EOF");
        assert_eq!(pt.text(), "x\n".repeat(100_000));
        assert_eq!(batches.len(), 1);
        assert_eq!(*attempts.borrow(), 1);
    }

    #[test]
    fn metrics_error_is_returned_after_draining() {
        let attempts = Rc::new(RefCell::new(0));
        let data = "{\"step\": 1}\n".repeat(10_000);
        let mut reader = Pieces::new(data.clone(), &[CHUNK]);
        let log = Shared::default();
        let mut batches = 0;
        let result = pump_stdout(
            &mut reader,
            io::sink(),
            log.clone(),
            Failing(ErrorKind::PermissionDenied, attempts.clone()),
            &PumpOptions::default(),
            || 0,
            |_| batches += 1,
        );
        assert_eq!(result.unwrap_err().kind(), ErrorKind::PermissionDenied);
        assert_eq!(log.text(), data);
        assert_eq!(reader.pos, data.len());
        assert!(batches >= 2);
    }

    #[test]
    fn read_error_is_returned() {
        struct Bad(u8);
        impl Read for Bad {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.0 += 1;
                match self.0 {
                    1 => Err(ErrorKind::Interrupted.into()),
                    2 => {
                        buf[..12].copy_from_slice(b"{\"step\": 1}\n");
                        Ok(12)
                    }
                    _ => Err(ErrorKind::ConnectionReset.into()),
                }
            }
        }
        let r = run_with(Bad(0), false);
        assert_eq!(r.result.unwrap_err().kind(), ErrorKind::ConnectionReset);
        assert_eq!(r.batches.len(), 1);
    }

    fn notices(data: &[u8], sizes: &[usize]) -> (Shared, Shared, Vec<StderrNotice>) {
        let (pt, log) = (Shared::default(), Shared::default());
        let mut seen = Vec::new();
        pump_stderr(Pieces::new(data, sizes), pt.clone(), log.clone(), |n| {
            seen.push(n)
        })
        .unwrap();
        (pt, log, seen)
    }

    fn run_stderr(data: &[u8], sizes: &[usize]) -> (Shared, Shared, usize) {
        let (pt, log, seen) = notices(data, sizes);
        let ooms = seen.iter().filter(|n| **n == StderrNotice::CudaOom).count();
        (pt, log, ooms)
    }

    #[test]
    fn stderr_naming_the_original_tools_arguments_is_noticed_once() {
        let argparse = b"usage: train.py [-h] --run-id RUN_ID --max-minutes MAX_MINUTES\n\
            train.py: error: the following arguments are required: --run-id, --max-minutes\n";
        for sizes in [&[CHUNK][..], &[1], &[5], &[17, 3]] {
            let (pt, _, seen) = notices(argparse, sizes);
            assert_eq!(seen, [StderrNotice::LegacyArgs], "{sizes:?}");
            assert_eq!(pt.bytes(), argparse);
        }
        let (_, _, seen) = notices(b"error: unrecognized arguments: --max-minutes 5\n", &[7]);
        assert_eq!(seen, [StderrNotice::LegacyArgs]);
        let (_, _, seen) = notices(b"error: --run_id and --max minutes\n", &[CHUNK]);
        assert!(seen.is_empty(), "{seen:?}");
        // Both kinds in one stream: each once, in the order they appeared.
        let (_, _, seen) = notices(b"--run-id\nCUDA out of memory\n--run-id\n", &[4]);
        assert_eq!(seen, [StderrNotice::LegacyArgs, StderrNotice::CudaOom]);
    }

    #[test]
    fn stderr_passes_raw_chunks() {
        let data = b"\r 10%|#    | 1/10\r 20%|##   | 2/10\rWarning\n\xff";
        let (pt, log, ooms) = run_stderr(data, &[3, 11]);
        assert_eq!(pt.bytes(), data);
        assert_eq!(log.bytes(), data);
        assert_eq!(ooms, 0);
    }

    #[test]
    fn stderr_writes_each_chunk_without_waiting_for_a_newline() {
        struct Log(Rc<RefCell<Vec<Vec<u8>>>>);
        impl Write for Log {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().push(buf.to_vec());
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let writes = Rc::new(RefCell::new(Vec::new()));
        pump_stderr(
            Pieces::new(&b"\r 10%\r 20%\r 30%"[..], &[5]),
            Log(writes.clone()),
            io::sink(),
            |_| {},
        )
        .unwrap();
        assert_eq!(*writes.borrow(), [b"\r 10%", b"\r 20%", b"\r 30%"]);
    }

    #[test]
    fn stderr_cuda_oom_once_even_split() {
        let msg = b"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n";
        let mut data = b"loading...\n".repeat(10);
        data.extend_from_slice(msg);
        data.extend_from_slice(msg);
        for sizes in [&[CHUNK][..], &[1], &[7], &[118, 3], &[123]] {
            let (pt, _, ooms) = run_stderr(&data, sizes);
            assert_eq!(ooms, 1, "{sizes:?}");
            assert_eq!(pt.bytes(), data);
        }
        for pattern in CUDA_OOM_PATTERNS {
            let text = format!("RuntimeError: {pattern}\n");
            // Split at every position of the pattern.
            for split in 1..text.len() {
                let (_, _, ooms) = run_stderr(text.as_bytes(), &[split, CHUNK]);
                assert_eq!(ooms, 1, "{pattern} split at {split}");
            }
        }
        let (_, _, ooms) = run_stderr(b"CUDA out of mem\nory\n", &[CHUNK]);
        assert_eq!(ooms, 0);
    }

    #[test]
    fn stderr_broken_pipe_keeps_logging() {
        let attempts = Rc::new(RefCell::new(0));
        let log = Shared::default();
        let mut ooms = 0;
        let data = b"x".repeat(300_000);
        pump_stderr(
            Pieces::new(data.clone(), &[1000]),
            Failing(ErrorKind::BrokenPipe, attempts.clone()),
            log.clone(),
            |_| ooms += 1,
        )
        .unwrap();
        assert_eq!(log.bytes(), data);
        assert_eq!(*attempts.borrow(), 1);
    }
}
