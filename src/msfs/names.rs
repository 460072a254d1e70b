//! Stored file names and paths (B-MSFS-2, B-MSFS-7): how the server makes them and the exact
//! pattern a download path must match before anything touches the disk.
//!
//! A stored file lives at `DataDir/msfs/<path>` with `path` = `g0/NNN/MMM/<name>`:
//!
//! - `<name>` = 32 random lowercase hex characters, then `_<W>x<H>` (1–4 digits each) when the
//!   client file name ends with it just before its extension, then `.<ext>` when the client
//!   extension is 1–15 ASCII letters or digits (kept as the client wrote it);
//! - `NNN` and `MMM` are the first two random bytes of the name as 3-digit decimals (000–255),
//!   which spreads files over at most 65 536 directories.

/// Hex characters of the random part of a name.
pub const RANDOM_HEX: usize = 32;
const MAX_EXT: usize = 15;
const MAX_DIM_DIGITS: usize = 4;

/// `g0/NNN/MMM/<name>` for an upload named `client_name` by the client, from 16 random bytes.
pub fn new_path(client_name: &str, random: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut name = String::with_capacity(RANDOM_HEX + 32);
    for &b in random {
        for nibble in [b >> 4, b & 0x0f] {
            name.push(char::from(
                HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
            ));
        }
    }
    let (dims, ext) = client_suffixes(client_name);
    if let Some(d) = dims {
        name.push('_');
        name.push_str(d);
    }
    if let Some(e) = ext {
        name.push('.');
        name.push_str(e);
    }
    let [d1, d2, ..] = *random;
    format!("g0/{d1:03}/{d2:03}/{name}")
}

/// The `WxH` before the extension and the extension of a client file name, each if valid.
/// A directory part (`/` or `\`, as some Windows clients send it) is ignored.
fn client_suffixes(client_name: &str) -> (Option<&str>, Option<&str>) {
    let base = client_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(client_name);
    let (stem, ext) = match base.rsplit_once('.') {
        Some((stem, ext)) => (stem, Some(ext)),
        None => (base, None),
    };
    let ext = ext.filter(|e| is_ext(e));
    let dims = stem.rsplit_once('_').map(|(_, d)| d).filter(|d| is_dims(d));
    (dims, ext)
}

fn is_ext(e: &str) -> bool {
    (1..=MAX_EXT).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_digits(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `W x H`, 1–4 digits each.
fn is_dims(d: &str) -> bool {
    d.split_once('x')
        .is_some_and(|(w, h)| is_digits(w, MAX_DIM_DIGITS) && is_digits(h, MAX_DIM_DIGITS))
}

/// A stored name: 32 lowercase hex, optional `_WxH`, optional `.ext`, nothing else.
fn is_name(name: &str) -> bool {
    let Some((random, rest)) = name.split_at_checked(RANDOM_HEX) else {
        return false;
    };
    if !random
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let (dims, ext) = match rest.split_once('.') {
        Some((dims, ext)) => (dims, Some(ext)),
        None => (rest, None),
    };
    let dims_ok = dims.is_empty() || dims.strip_prefix('_').is_some_and(is_dims);
    dims_ok && ext.is_none_or(is_ext)
}

/// The stored path a request target names (`/g0/NNN/MMM/<name>`, a query string ignored), or
/// `None` when it does not match that pattern exactly (percent-escapes, `..`, other prefixes,
/// absolute-form targets: all `None`).
pub fn parse_target(target: &str) -> Option<&str> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let rel = path.strip_prefix('/')?;
    let mut parts = rel.split('/');
    let ok = parts.next() == Some("g0")
        && parts
            .next()
            .is_some_and(|d| d.len() == 3 && is_digits(d, 3))
        && parts
            .next()
            .is_some_and(|d| d.len() == 3 && is_digits(d, 3))
        && parts.next().is_some_and(is_name)
        && parts.next().is_none();
    ok.then_some(rel)
}

/// `Content-Type` of a stored path, from its extension (B-MSFS-7).
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: [u8; 16] = [
        0x07, 0xff, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89,
        0xab,
    ];
    fn hex() -> String {
        "07ff123456789abcdef00123456789ab".to_string()
    }

    #[test]
    fn names_keep_dimensions_and_extension() {
        let h = hex();
        assert_eq!(new_path("a.jpg", &R), format!("g0/007/255/{h}.jpg"));
        assert_eq!(
            new_path("shot_640x480.PNG", &R),
            format!("g0/007/255/{h}_640x480.PNG")
        );
        assert_eq!(new_path("noext", &R), format!("g0/007/255/{h}"));
        assert_eq!(new_path("", &R), format!("g0/007/255/{h}"));
        assert_eq!(new_path("x_1x2", &R), format!("g0/007/255/{h}_1x2"));
        assert_eq!(
            new_path("C:\\pics\\y_10x20.gif", &R),
            format!("g0/007/255/{h}_10x20.gif")
        );
        assert_eq!(new_path("../../etc/passwd", &R), format!("g0/007/255/{h}"));
        // Bad extension dropped, dimensions before it still kept.
        assert_eq!(new_path("a_3x4.j-g", &R), format!("g0/007/255/{h}_3x4"));
        assert_eq!(
            new_path("a.0123456789abcdef", &R),
            format!("g0/007/255/{h}")
        );
        // Not dimensions: 5 digits, missing part, upper-case X, not just before the extension.
        for n in [
            "a_12345x1.jpg",
            "a_x1.jpg",
            "a_1X1.jpg",
            "a_1x1b.jpg",
            "a_1x1.b.jpg",
        ] {
            assert_eq!(new_path(n, &R), format!("g0/007/255/{h}.jpg"), "{n}");
        }
        assert_eq!(
            new_path("图片_2x3.jpg", &R),
            format!("g0/007/255/{h}_2x3.jpg")
        );
    }

    #[test]
    fn every_generated_path_parses_back() {
        for n in ["a.jpg", "b_1x1.webp", "c", "d_9999x9999", "e.Z"] {
            let p = new_path(n, &R);
            assert_eq!(parse_target(&format!("/{p}")), Some(p.as_str()));
            assert_eq!(parse_target(&format!("/{p}?v=1")), Some(p.as_str()));
        }
    }

    #[test]
    fn anything_else_is_rejected() {
        let h = hex();
        for t in [
            String::new(),
            "/".into(),
            format!("g0/007/255/{h}.jpg"),
            format!("/g1/007/255/{h}.jpg"),
            format!("/g0/07/255/{h}.jpg"),
            format!("/g0/0007/255/{h}.jpg"),
            format!("/g0/a07/255/{h}.jpg"),
            format!("/g0/007/255/{h}.jpg/"),
            format!("/g0/007/255/{h}.jpg/x"),
            format!("/g0/007//{h}.jpg"),
            format!("/g0/../255/{h}.jpg"),
            format!("/g0/007/255/../{h}.jpg"),
            format!("/g0/007/255/%2e%2e/{h}.jpg"),
            format!("/g0/007/255/{h}%2ejpg"),
            format!("/g0/007/255/{}.jpg", h.to_uppercase()),
            format!("/g0/007/255/{}.jpg", &h[1..]),
            format!("/g0/007/255/{h}0.jpg"),
            format!("/g0/007/255/{h}.j-g"),
            format!("/g0/007/255/{h}."),
            format!("/g0/007/255/{h}_1x.jpg"),
            format!("/g0/007/255/{h}_.jpg"),
            format!("/g0/007/255/{h}.jpg.png"),
            format!("//g0/007/255/{h}.jpg"),
            format!("http://x/g0/007/255/{h}.jpg"),
            "/g0/007/255/..".into(),
            "/etc/passwd".into(),
            "/g0/007/255/é".into(),
        ] {
            assert_eq!(parse_target(&t), None, "{t}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("g0/1/2/x.jpg"), "image/jpeg");
        assert_eq!(content_type("x.JPEG"), "image/jpeg");
        assert_eq!(content_type("x.png"), "image/png");
        assert_eq!(content_type("x.gif"), "image/gif");
        assert_eq!(content_type("x.bmp"), "image/bmp");
        assert_eq!(content_type("x.webp"), "image/webp");
        assert_eq!(content_type("x.amr"), "application/octet-stream");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
