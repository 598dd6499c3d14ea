//! A tiny SMTP server on `127.0.0.1:0` that keeps what it receives, for testing the email outbox without a
//! real mail server (RFC 5321, the subset a submission client uses).
//!
//! It speaks plain SMTP (no STARTTLS): `EHLO`/`HELO` (advertising `8BITMIME`, `SMTPUTF8` and
//! `AUTH PLAIN LOGIN`, any credentials accepted and their user names recorded), `MAIL FROM`, `RCPT TO`,
//! `DATA` (read up to `<CRLF>.<CRLF>`, dot-unstuffed), `RSET`, `NOOP`, `QUIT`. It can be told to refuse the
//! next `DATA` commands with a transient `451` or a permanent `550`. [`ReceivedMail`] has small decoders
//! (headers with RFC 2047 words, MIME parts in quoted-printable or base64) for assertions.
//!
//! ```ignore
//! let sink = SmtpSink::start().await;
//! let url = sink.url(); // smtp://127.0.0.1:PORT
//! sink.refuse_next_data(1, Refusal::Transient);
//! // … deliver …
//! let mails = sink.wait_for(1, Duration::from_secs(5)).await;
//! assert_eq!(mails[0].header("Subject").as_deref(), Some("Hello"));
//! assert!(mails[0].text_part().unwrap().contains("Hello"));
//! ```
//!
//! Deliberately without lettre: the sink must not share code with the client it tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One message the sink accepted: the envelope and the raw message (headers and body, CRLF line ends,
/// dot-unstuffed, without the final `.` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The `MAIL FROM` address (without `<>` and parameters).
    pub from: String,
    /// The `RCPT TO` addresses, in order.
    pub to: Vec<String>,
    pub data: String,
}

/// How to refuse a `DATA` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `451 4.3.0`: try again later.
    Transient,
    /// `550 5.7.1`: refused for good.
    Permanent,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    refusals: Mutex<VecDeque<Refusal>>,
    auth_users: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running sink; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl SmtpSink {
    /// Starts the sink on a fresh loopback port.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("loopback address");
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    let (r, w) = stream.into_split();
                    let _ = session(BufReader::new(r), w, &shared).await;
                });
            }
        });
        SmtpSink {
            addr,
            shared,
            server,
        }
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP, no credentials).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// `smtp://user:password@127.0.0.1:PORT`: the client authenticates (any credentials are accepted).
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        format!("smtp://{user}:{password}@{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.messages).clone()
    }

    /// User names of successful `AUTH` exchanges, in order.
    pub fn auth_users(&self) -> Vec<String> {
        lock(&self.shared.auth_users).clone()
    }

    /// Refuses the next `n` `DATA` commands (after any refusals already queued) with `refusal`.
    pub fn refuse_next_data(&self, n: usize, refusal: Refusal) {
        lock(&self.shared.refusals).extend(std::iter::repeat_n(refusal, n));
    }

    /// Waits until at least `n` messages were accepted or `timeout` passed; returns the messages so far.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Reads one line without its CRLF; `None` at end of stream.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if r.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// The address inside `<…>` after `FROM:`/`TO:`, ignoring parameters like `BODY=8BITMIME`.
fn path_arg(line: &str) -> String {
    match (line.find('<'), line.find('>')) {
        (Some(a), Some(b)) if b > a => line[a + 1..b].to_string(),
        _ => line
            .split_once(':')
            .map(|(_, v)| v.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_default(),
    }
}

/// The user name in an `AUTH PLAIN` response (`authzid NUL authcid NUL password`, base64).
fn plain_user(b64: &str) -> String {
    let raw = base64_decode(b64);
    raw.split(|b| *b == 0)
        .nth(1)
        .map(|u| String::from_utf8_lossy(u).into_owned())
        .unwrap_or_default()
}

async fn session<R, W>(mut r: BufReader<R>, mut w: W, shared: &Shared) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
        w.write_all(format!("{text}\r\n").as_bytes()).await?;
        w.flush().await
    }

    reply(&mut w, "220 mtdesk-sink ESMTP ready").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut r).await? {
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        match verb {
            "EHLO" => {
                reply(
                    &mut w,
                    "250-mtdesk-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN",
                )
                .await?;
            }
            "HELO" => reply(&mut w, "250 mtdesk-sink").await?,
            "AUTH" => {
                let args: Vec<&str> = line.split_whitespace().skip(1).collect();
                let mechanism = args.first().map(|m| m.to_ascii_uppercase());
                let user = match (mechanism.as_deref(), args.get(1)) {
                    (Some("PLAIN"), Some(initial)) => plain_user(initial),
                    (Some("PLAIN"), None) => {
                        reply(&mut w, "334 ").await?;
                        plain_user(&read_line(&mut r).await?.unwrap_or_default())
                    }
                    (Some("LOGIN"), initial) => {
                        let user = match initial {
                            Some(u) => (*u).to_string(),
                            None => {
                                reply(&mut w, "334 VXNlcm5hbWU6").await?;
                                read_line(&mut r).await?.unwrap_or_default()
                            }
                        };
                        reply(&mut w, "334 UGFzc3dvcmQ6").await?;
                        let _password = read_line(&mut r).await?;
                        String::from_utf8_lossy(&base64_decode(&user)).into_owned()
                    }
                    _ => {
                        reply(&mut w, "504 5.5.4 Unrecognized authentication type").await?;
                        continue;
                    }
                };
                lock(&shared.auth_users).push(user);
                reply(&mut w, "235 2.7.0 Authentication successful").await?;
            }
            "MAIL" => {
                from = Some(path_arg(&line));
                to.clear();
                reply(&mut w, "250 2.1.0 OK").await?;
            }
            "RCPT" => {
                if from.is_none() {
                    reply(&mut w, "503 5.5.1 MAIL first").await?;
                } else {
                    to.push(path_arg(&line));
                    reply(&mut w, "250 2.1.5 OK").await?;
                }
            }
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    reply(&mut w, "503 5.5.1 RCPT first").await?;
                    continue;
                }
                let refusal = lock(&shared.refusals).pop_front();
                match refusal {
                    Some(Refusal::Transient) => {
                        from = None;
                        to.clear();
                        reply(&mut w, "451 4.3.0 Try again later").await?;
                        continue;
                    }
                    Some(Refusal::Permanent) => {
                        from = None;
                        to.clear();
                        reply(&mut w, "550 5.7.1 Message refused").await?;
                        continue;
                    }
                    None => {}
                }
                reply(&mut w, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut data = String::new();
                loop {
                    let Some(l) = read_line(&mut r).await? else {
                        return Ok(());
                    };
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                lock(&shared.messages).push(ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                });
                reply(&mut w, "250 2.0.0 OK queued").await?;
            }
            "RSET" => {
                from = None;
                to.clear();
                reply(&mut w, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut w, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut w, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut w, "502 5.5.2 Command not recognized").await?,
        }
    }
    Ok(())
}

/// One leaf part of a MIME message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimePart {
    /// The media type in lower case, without parameters: `text/plain`.
    pub content_type: String,
    /// The body after its transfer encoding was undone, read as UTF-8.
    pub body: String,
}

impl ReceivedMail {
    /// A top-level header's value: folded lines joined, RFC 2047 encoded words decoded (UTF-8).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_head_body(&self.data);
        headers(head)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_words(&v))
    }

    /// Every leaf part (a single-part message is one part), bodies decoded.
    pub fn parts(&self) -> Vec<MimePart> {
        let mut out = Vec::new();
        let (head, body) = split_head_body(&self.data);
        collect_parts(head, body, &mut out);
        out
    }

    /// The decoded `text/plain` part.
    pub fn text_part(&self) -> Option<String> {
        self.part("text/plain")
    }

    /// The decoded `text/html` part.
    pub fn html_part(&self) -> Option<String> {
        self.part("text/html")
    }

    fn part(&self, content_type: &str) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.body)
    }
}

fn split_head_body(s: &str) -> (&str, &str) {
    if let Some(i) = s.find("\r\n\r\n") {
        (&s[..i], &s[i + 4..])
    } else if let Some(i) = s.find("\n\n") {
        (&s[..i], &s[i + 2..])
    } else {
        (s, "")
    }
}

/// Header fields in order, folded continuation lines joined with a space.
fn headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// A parameter of a structured header value: `boundary` in `multipart/alternative; boundary="x"`.
fn header_param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn collect_parts(head: &str, body: &str, out: &mut Vec<MimePart>) {
    let hs = headers(head);
    let get = |name: &str| {
        hs.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let content_type = get("Content-Type").unwrap_or_else(|| "text/plain".to_string());
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("multipart/") {
        let Some(boundary) = header_param(&content_type, "boundary") else {
            return;
        };
        let delimiter = format!("--{boundary}");
        for chunk in body.split(delimiter.as_str()).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.strip_prefix("\r\n").unwrap_or(chunk);
            let chunk = chunk.strip_suffix("\r\n").unwrap_or(chunk);
            let (h, b) = split_head_body(chunk);
            collect_parts(h, b, out);
        }
        return;
    }
    let encoding = get("Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => qp_decode(body, false),
        "base64" => base64_decode(body),
        _ => body.as_bytes().to_vec(),
    };
    out.push(MimePart {
        content_type: media,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` escapes, `=` at a line end is a soft break. In encoded words
/// (`underscore_is_space`), `_` stands for a space (RFC 2047 §4.2).
fn qp_decode(s: &str, underscore_is_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'=' if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') => i += 3,
            b'=' if b.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' => match (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            b'_' if underscore_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Standard base64 (RFC 4648), whitespace ignored, padding optional.
fn base64_decode(s: &str) -> Vec<u8> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let Some(v) = val(c) else {
            continue;
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`); whitespace between two encoded
/// words is dropped, other text is kept as is. Charsets other than UTF-8/ASCII are read as UTF-8.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut pending_space = String::new();
    let mut last_was_word = false;
    while !rest.is_empty() {
        if let Some((decoded, len)) = encoded_word(rest) {
            if !last_was_word {
                out.push_str(&pending_space);
            }
            pending_space.clear();
            out.push_str(&decoded);
            rest = &rest[len..];
            last_was_word = true;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            pending_space.push(c);
        } else {
            out.push_str(&pending_space);
            pending_space.clear();
            out.push(c);
            last_was_word = false;
        }
        rest = &rest[c.len_utf8()..];
    }
    out.push_str(&pending_space);
    out
}

/// An encoded word at the start of `s`: its decoded text and its length in `s`.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (_charset, after) = inner.split_once('?')?;
    let (encoding, after) = after.split_once('?')?;
    let end = after.find("?=")?;
    let text = &after[..end];
    let bytes = match encoding {
        "b" | "B" => base64_decode(text),
        "q" | "Q" => qp_decode(text, true),
        _ => return None,
    };
    let len = s.len() - after.len() + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    #[test]
    fn base64_and_quoted_printable_decode() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(base64_decode("aGVs\r\nbG8="), b"hello");
        assert_eq!(
            qp_decode("caf=C3=A9 =\r\nau lait=3D", false),
            "café au lait=".as_bytes()
        );
        assert_eq!(plain_user("AGJvYgBzZWNyZXQ="), "bob");
    }

    #[test]
    fn encoded_words_are_decoded_and_joined() {
        assert_eq!(decode_words("=?utf-8?b?Q2Fmw6k=?= au lait"), "Café au lait");
        assert_eq!(decode_words("=?utf-8?q?a_b?= =?utf-8?q?c?="), "a bc");
        assert_eq!(decode_words("plain  text"), "plain  text");
    }

    #[test]
    fn multipart_messages_are_split_into_decoded_parts() {
        let data = "From: a@x\r\nTo: b@y\r\nSubject: =?utf-8?b?SMOpbGxv?=\r\n\
            Content-Type: multipart/alternative;\r\n boundary=\"BB\"\r\n\r\n\
            --BB\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
            H=C3=A9llo\r\n--BB\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
            PHA+SGk8L3A+\r\n--BB--\r\n";
        let m = ReceivedMail {
            from: "a@x".into(),
            to: vec!["b@y".into()],
            data: data.into(),
        };
        assert_eq!(m.header("subject").as_deref(), Some("Héllo"));
        assert_eq!(m.text_part().as_deref(), Some("Héllo"));
        assert_eq!(m.html_part().as_deref(), Some("<p>Hi</p>"));
    }

    /// Sends `line`, returns the whole reply (up to its last line, `NNN text`).
    async fn send(stream: &mut TcpStream, line: &str) -> String {
        stream.write_all(line.as_bytes()).await.expect("write");
        let mut reply = String::new();
        let mut buf = vec![0u8; 512];
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "connection closed after {reply:?}");
            reply.push_str(&String::from_utf8_lossy(&buf[..n]));
            let last = reply
                .trim_end_matches("\r\n")
                .rsplit("\r\n")
                .next()
                .unwrap_or("");
            if reply.ends_with("\r\n") && last.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    #[tokio::test]
    async fn a_session_is_recorded_and_data_is_dot_unstuffed() {
        let sink = SmtpSink::start().await;
        sink.refuse_next_data(1, Refusal::Transient);
        let mut s = TcpStream::connect(sink.addr()).await.expect("connect");
        assert!(send(&mut s, "").await.starts_with("220"));
        assert!(
            send(&mut s, "EHLO me\r\n")
                .await
                .contains("AUTH PLAIN LOGIN")
        );
        assert!(
            send(&mut s, "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n")
                .await
                .starts_with("235")
        );
        assert!(
            send(&mut s, "MAIL FROM:<a@x> BODY=8BITMIME\r\n")
                .await
                .starts_with("250")
        );
        assert!(send(&mut s, "RCPT TO:<b@y>\r\n").await.starts_with("250"));
        assert!(send(&mut s, "DATA\r\n").await.starts_with("451"));
        assert!(send(&mut s, "MAIL FROM:<a@x>\r\n").await.starts_with("250"));
        assert!(send(&mut s, "RCPT TO:<b@y>\r\n").await.starts_with("250"));
        assert!(send(&mut s, "RCPT TO:<c@z>\r\n").await.starts_with("250"));
        assert!(send(&mut s, "DATA\r\n").await.starts_with("354"));
        let ok = send(&mut s, "Subject: hi\r\n\r\n..dot\r\nline\r\n.\r\n").await;
        assert!(ok.starts_with("250"), "{ok}");
        assert!(send(&mut s, "QUIT\r\n").await.starts_with("221"));
        let got = sink.wait_for(1, Duration::from_secs(1)).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].from, "a@x");
        assert_eq!(got[0].to, vec!["b@y".to_string(), "c@z".to_string()]);
        assert_eq!(got[0].data, "Subject: hi\r\n\r\n.dot\r\nline\r\n");
        assert_eq!(sink.auth_users(), vec!["bob".to_string()]);
    }
}
