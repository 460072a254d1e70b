//! A small `multipart/form-data` reader (RFC 7578 / RFC 2046) for msfs uploads: the boundary
//! from `Content-Type`, then the first part whose `Content-Disposition` carries a file name.
//!
//! The body must be well formed up to the closing delimiter: every part has a header block
//! (at most [`MAX_PART_HEAD`] bytes, CRLF line ends) and is followed by `CRLF--boundary`.
//! Anything else is an error (B-MSFS-4). No allocation depends on the input beyond the file
//! name, and the content is returned as a range of the body, not copied.
//!
//! Searching for the delimiter is linear: a boundary cannot contain CR (only RFC 2046 `bchars`
//! are accepted), so candidate matches never overlap.

use std::ops::Range;

/// Longest header block of one part.
pub const MAX_PART_HEAD: usize = 8 * 1024;
/// RFC 2046: 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// The file part of an upload.
#[derive(Debug, PartialEq, Eq)]
pub struct FilePart {
    /// As the client sent it (lossy UTF-8), possibly empty.
    pub filename: String,
    /// Where the file's bytes are in the body.
    pub content: Range<usize>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum MultipartError {
    /// No opening delimiter, a missing CRLF, an oversized or unterminated part head, or no
    /// closing delimiter.
    Broken(&'static str),
    /// Well formed, but no part has a file name.
    NoFilePart,
}

/// The boundary of a `multipart/form-data` content type, or `None` for any other type or a
/// missing or invalid boundary.
pub fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let mut items = split_params(content_type);
    let kind = items.next()?;
    if !trim(kind).eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    let b = items.find_map(|p| param(p, b"boundary"))?;
    let valid = (1..=MAX_BOUNDARY).contains(&b.len())
        && b.iter().all(|&c| is_bchar(c))
        && b.last() != Some(&b' ');
    valid.then_some(b)
}

/// RFC 2046 `bchars`.
fn is_bchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c)
}

/// The first part with a file name, checking the whole body's structure.
pub fn file_part(body: &[u8], boundary: &[u8]) -> Result<FilePart, MultipartError> {
    use MultipartError::Broken;
    let mut delim = Vec::with_capacity(boundary.len() + 4);
    delim.extend_from_slice(b"\r\n--");
    delim.extend_from_slice(boundary);
    let dash = delim.get(2..).unwrap_or_default();
    // Position just after the first delimiter (a preamble before it is ignored).
    let mut pos = if body.starts_with(dash) {
        dash.len()
    } else {
        find(body, &delim, 0).ok_or(Broken("no opening boundary"))? + delim.len()
    };
    let mut found = None;
    loop {
        let rest = body.get(pos..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return found.ok_or(MultipartError::NoFilePart);
        }
        // Transport padding, then CRLF.
        let pad = rest
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        if !rest.get(pad..).unwrap_or_default().starts_with(b"\r\n") {
            return Err(Broken("no line end after a boundary"));
        }
        let head_start = pos + pad + 2;
        let after = body.get(head_start..).unwrap_or_default();
        let (head, content_start) = if after.starts_with(b"\r\n") {
            (&[][..], head_start + 2)
        } else {
            let window = after.get(..MAX_PART_HEAD + 4).unwrap_or(after);
            let end = find(window, b"\r\n\r\n", 0).ok_or(Broken("part head too long or cut"))?;
            (window.get(..end).unwrap_or_default(), head_start + end + 4)
        };
        let content_end = find(body, &delim, content_start).ok_or(Broken("no closing boundary"))?;
        if found.is_none() {
            if let Some(filename) = filename(head) {
                found = Some(FilePart {
                    filename,
                    content: content_start..content_end,
                });
            }
        }
        pos = content_end + delim.len();
    }
}

/// The file name in a part's headers, if its `Content-Disposition` has one (`filename`, else
/// the value after the charset of `filename*`).
fn filename(head: &[u8]) -> Option<String> {
    for line in head.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if !trim(name).eq_ignore_ascii_case(b"content-disposition") {
            continue;
        }
        let value = value.get(1..).unwrap_or_default();
        let mut plain = None;
        let mut extended = None;
        for p in split_params(value).skip(1) {
            if let Some(v) = param(p, b"filename") {
                plain.get_or_insert(v);
            } else if let Some(v) = param(p, b"filename*") {
                let v = match v.windows(2).position(|w| w == b"''") {
                    Some(i) => v.get(i + 2..).unwrap_or_default().to_vec(),
                    None => v,
                };
                extended.get_or_insert(v);
            }
        }
        return plain
            .or(extended)
            .map(|v| String::from_utf8_lossy(&v).into_owned());
    }
    None
}

/// Splits a header value at `;` outside quoted strings.
fn split_params(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    v.split(move |&c| {
        if escaped {
            escaped = false;
            return false;
        }
        match c {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b';' if !quoted => return true,
            _ => {}
        }
        false
    })
}

/// The value of parameter `name` (`name=token` or `name="quoted"`), unquoted.
fn param(p: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let eq = p.iter().position(|&c| c == b'=')?;
    let (k, v) = p.split_at(eq);
    if !trim(k).eq_ignore_ascii_case(name) {
        return None;
    }
    let v = trim(v.get(1..).unwrap_or_default());
    let Some(inner) = v.strip_prefix(b"\"") else {
        return Some(v.to_vec());
    };
    let inner = inner.strip_suffix(b"\"").unwrap_or(inner);
    // `\"` and `\\` are escapes; any other backslash is literal (old browsers send Windows
    // paths unescaped).
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter().peekable();
    while let Some(&c) = it.next() {
        match (c, it.peek()) {
            (b'\\', Some(&&n)) if n == b'"' || n == b'\\' => {
                out.push(n);
                it.next();
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// First index of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    loop {
        let rest = hay.get(i..)?;
        let at = i + rest.iter().position(|&c| c == first)?;
        if hay.get(at..)?.starts_with(needle) {
            return Some(at);
        }
        i = at + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &[u8] = b"multipart/form-data; boundary=XyZ";

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (head, content) in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            b.extend_from_slice(head.as_bytes());
            b.extend_from_slice(b"\r\n\r\n");
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    fn parse(b: &[u8]) -> Result<(String, Vec<u8>), MultipartError> {
        let f = file_part(b, b"XyZ")?;
        Ok((f.filename, b[f.content].to_vec()))
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary(CT), Some(b"XyZ".to_vec()));
        assert_eq!(
            boundary(b"Multipart/Form-Data;charset=utf-8;BOUNDARY=\"a b:c\""),
            Some(b"a b:c".to_vec())
        );
        assert_eq!(
            boundary(b"multipart/form-data; boundary=------------------------d74496d66958873e"),
            Some(b"------------------------d74496d66958873e".to_vec())
        );
        for bad in [
            &b"application/octet-stream; boundary=x"[..],
            b"multipart/mixed; boundary=x",
            b"multipart/form-data",
            b"multipart/form-data; boundary=",
            b"multipart/form-data; boundary=\"\"",
            b"multipart/form-data; boundary=a\rb",
            b"multipart/form-data; boundary=\"ab \"",
            b"",
        ] {
            assert_eq!(boundary(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        assert_eq!(boundary(long.as_bytes()), None);
    }

    #[test]
    fn finds_the_file_part() {
        let b = body(&[
            ("Content-Disposition: form-data; name=\"user\"", b"42"),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"a_1x2.jpg\"\r\nContent-Type: image/jpeg",
                b"\x00\r\n--XyA\r\n-XyZ\r\n\xff",
            ),
            ("Content-Disposition: form-data; name=\"f2\"; filename=\"b.png\"", b"zz"),
        ]);
        assert_eq!(
            parse(&b),
            Ok((
                "a_1x2.jpg".into(),
                b"\x00\r\n--XyA\r\n-XyZ\r\n\xff".to_vec()
            ))
        );
    }

    #[test]
    fn preamble_padding_empty_content_and_name_forms() {
        let mut b = b"preamble\r\n--XyZ \t\r\nContent-Disposition: form-data; filename=x\r\n\r\n\r\n--XyZ--".to_vec();
        assert_eq!(parse(&b), Ok(("x".into(), Vec::new())));
        b = body(&[(
            "content-disposition: form-data; filename=\"a;b \\\"q\\\" C:\\d\\e.png\"",
            b"1",
        )]);
        assert_eq!(
            parse(&b),
            Ok(("a;b \"q\" C:\\d\\e.png".into(), b"1".to_vec()))
        );
        b = body(&[(
            "Content-Disposition: form-data; filename*=UTF-8''%E5%9B%BE_3x4.gif",
            b"2",
        )]);
        assert_eq!(parse(&b), Ok(("%E5%9B%BE_3x4.gif".into(), b"2".to_vec())));
        b = body(&[("Content-Disposition: form-data; filename=\"\"", b"3")]);
        assert_eq!(parse(&b), Ok((String::new(), b"3".to_vec())));
    }

    #[test]
    fn broken_inputs() {
        use MultipartError::*;
        assert_eq!(
            parse(&body(&[(
                "Content-Disposition: form-data; name=\"a\"",
                b"1"
            )])),
            Err(NoFilePart)
        );
        assert_eq!(parse(b"--XyZ--"), Err(NoFilePart));
        let good = body(&[("Content-Disposition: form-data; filename=\"a\"", b"123")]);
        // Every truncation of a good body is an error, never a panic.
        for n in 0..good.len() - 2 {
            assert!(parse(&good[..n]).is_err(), "cut at {n}");
        }
        for bad in [
            &b""[..],
            b"no boundary here",
            b"--XyZ",
            b"--XyZx\r\n\r\n\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; filename=a\r\n\r\ndata without end",
            b"--XyZ\r\nContent-Disposition: form-data; filename=a\r\n",
            b"--XyZ\nContent-Disposition: form-data; filename=a\n\nx\n--XyZ--",
            b"\r\n--XyZ",
            b"--XyZ\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(Broken(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut huge = b"--XyZ\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_PART_HEAD + 10));
        huge.extend_from_slice(b"\r\n\r\nx\r\n--XyZ--");
        assert!(matches!(parse(&huge), Err(Broken(_))));
    }

    #[test]
    fn search_is_exact() {
        assert_eq!(find(b"abcabd", b"abd", 0), Some(3));
        assert_eq!(find(b"abcabd", b"abd", 4), None);
        assert_eq!(find(b"ab", b"abc", 0), None);
        assert_eq!(find(b"abc", b"", 0), None);
        assert_eq!(find(b"abc", b"c", 9), None);
    }
}
