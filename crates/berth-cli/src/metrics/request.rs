//! An HTTP/1.x request head (RFC 9112), read line by line and sans IO:
//! enough of it to answer a scrape, and strict about the rest.
//!
//! Lines come from the line codec without their terminator (CR LF, or a
//! bare LF, which RFC 9112 section 2.2 lets a recipient accept). The
//! request line is `METHOD SP target SP HTTP/1.x`; a header field is a
//! token, a colon and a value, with no whitespace before the colon and no
//! obsolete line folding; an empty line ends the head. An HTTP/1.1 request
//! must name its `Host` exactly once. Anything else is refused with the
//! status to answer.

use super::response::Status;

/// The most bytes a request head may take, line terminators included.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header fields in a head.
pub const MAX_FIELDS: usize = 64;

/// A request method, as far as the server cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Any other (valid) method.
    Other,
}

/// A whole request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The target's path, without its query.
    pub path: String,
}

/// What one more line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The head goes on.
    More,
    /// The head is complete.
    Done(Request),
}

/// Reads one request head.
#[derive(Debug, Default)]
pub struct HeadParser {
    /// Bytes of the head so far, counting two per terminator.
    bytes: usize,
    fields: usize,
    hosts: usize,
    /// The request line, once read, and whether it said HTTP/1.1.
    start: Option<(Request, bool)>,
}

impl HeadParser {
    /// The status for a line longer than the codec allows: the request
    /// line's target was too long, or a header field was.
    pub fn too_long(&self) -> Status {
        match self.start {
            None => Status::UriTooLong,
            Some(_) => Status::FieldsTooLarge,
        }
    }

    /// Take the next line of the head (without its terminator).
    pub fn line(&mut self, line: &[u8]) -> Result<Step, Status> {
        self.bytes += line.len() + 2;
        if self.bytes > MAX_HEAD {
            return Err(self.too_long());
        }
        match &self.start {
            // Empty lines before the request line are ignored (RFC 9112, 2.2).
            None if line.is_empty() => Ok(Step::More),
            None => {
                self.start = Some(request_line(line)?);
                Ok(Step::More)
            }
            Some((_, http11)) if line.is_empty() => {
                if *http11 && self.hosts == 0 {
                    return Err(Status::BadRequest);
                }
                let (request, _) = self.start.take().expect("matched above");
                Ok(Step::Done(request))
            }
            Some(_) => {
                self.fields += 1;
                if self.fields > MAX_FIELDS {
                    return Err(Status::FieldsTooLarge);
                }
                if field(line)?.eq_ignore_ascii_case(b"host") {
                    self.hosts += 1;
                    if self.hosts > 1 {
                        return Err(Status::BadRequest);
                    }
                }
                Ok(Step::More)
            }
        }
    }
}

/// `METHOD SP target SP HTTP/1.x`: the request, and whether it is HTTP/1.1.
fn request_line(line: &[u8]) -> Result<(Request, bool), Status> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if !is_token(method) {
        return Err(Status::BadRequest);
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Status::VersionNotSupported);
        }
        _ => return Err(Status::BadRequest),
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let path = path(target).ok_or(Status::BadRequest)?;
    Ok((Request { method, path }, http11))
}

/// The path of a request target: origin form (`/path?query`), absolute
/// form (`http://host/path`), or `*`; visible ASCII only.
fn path(target: &[u8]) -> Option<String> {
    if target.is_empty() || !target.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let target = std::str::from_utf8(target).ok()?;
    let origin = if target.starts_with('/') || target == "*" {
        target
    } else {
        let (scheme, rest) = target.split_once("://")?;
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return None;
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if authority_end == 0 {
            return None;
        }
        match &rest[authority_end..] {
            "" => "/",
            p if p.starts_with('?') => "/",
            p => p,
        }
    };
    let path = origin.split('?').next().unwrap_or_default();
    Some(path.to_owned())
}

/// A header field line, checked; returns its name.
fn field(line: &[u8]) -> Result<&[u8], Status> {
    let colon = line.iter().position(|&b| b == b':');
    let Some(colon) = colon else {
        return Err(Status::BadRequest);
    };
    // A leading space or tab (obsolete line folding) and whitespace before
    // the colon both make the name an invalid token.
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    let value_ok = value
        .iter()
        .all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80);
    if is_token(name) && value_ok {
        Ok(name)
    } else {
        Err(Status::BadRequest)
    }
}

/// RFC 9110's `token`: one or more `tchar`.
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed the whole lines of `head`, without their LF or CR LF, as the
    /// codec does.
    fn parse(head: &str) -> Result<Step, Status> {
        let mut p = HeadParser::default();
        let mut last = Ok(Step::More);
        for line in head.split_inclusive('\n') {
            let Some(line) = line.strip_suffix('\n') else {
                break;
            };
            let line = line.strip_suffix('\r').unwrap_or(line);
            last = p.line(line.as_bytes());
            if !matches!(last, Ok(Step::More)) {
                break;
            }
        }
        last
    }

    fn done(method: Method, path: &str) -> Result<Step, Status> {
        Ok(Step::Done(Request {
            method,
            path: path.to_owned(),
        }))
    }

    #[test]
    fn a_scrape_parses() {
        let prometheus = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/3.0\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n";
        assert_eq!(parse(prometheus), done(Method::Get, "/metrics"));
        assert_eq!(
            parse("GET /metrics?x=1 HTTP/1.0\n\n"),
            done(Method::Get, "/metrics")
        );
        assert_eq!(
            parse("\r\nHEAD /metrics HTTP/1.0\r\n\r\n"),
            done(Method::Head, "/metrics")
        );
        assert_eq!(
            parse("POST /x HTTP/1.0\r\nContent-Length: 0\r\n\r\n"),
            done(Method::Other, "/x")
        );
        assert_eq!(
            parse("GET http://h:1/metrics HTTP/1.1\r\nHost: h:1\r\n\r\n"),
            done(Method::Get, "/metrics")
        );
        assert_eq!(
            parse("GET http://h HTTP/1.0\r\n\r\n"),
            done(Method::Get, "/")
        );
        assert_eq!(
            parse("OPTIONS * HTTP/1.0\r\n\r\n"),
            done(Method::Other, "*")
        );
        assert_eq!(parse("GET /metrics HTTP/1.0\r\n"), Ok(Step::More));
    }

    #[test]
    fn garbage_is_a_bad_request() {
        for head in [
            "hello\r\n\r\n",
            "GET /metrics\r\n\r\n",            // HTTP/0.9
            "GET  /metrics HTTP/1.0\r\n\r\n",  // two spaces
            "GET /metrics HTTP/1.0 x\r\n\r\n", // four parts
            "GET metrics HTTP/1.0\r\n\r\n",    // not a path
            "GET ftp://h/metrics HTTP/1.0\r\n\r\n",
            "GET http:///metrics HTTP/1.0\r\n\r\n",
            "G(T /metrics HTTP/1.0\r\n\r\n",     // not a token
            "GET /metrics http/1.0\r\n\r\n",     // versions are case-sensitive
            "GET /met\x01rics HTTP/1.0\r\n\r\n", // control byte
            "GET /metrics HTTP/1.0\rX\r\n\r\n",  // bare CR
            "GET /metrics HTTP/1.0\r\nNoColon\r\n\r\n",
            "GET /metrics HTTP/1.0\r\nName : v\r\n\r\n",
            "GET /metrics HTTP/1.0\r\n folded: v\r\n\r\n",
            "GET /metrics HTTP/1.0\r\n: v\r\n\r\n",
            "GET /metrics HTTP/1.0\r\nX: a\x00b\r\n\r\n",
            "GET /metrics HTTP/1.1\r\n\r\n", // no Host
            "GET /metrics HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
        ] {
            assert_eq!(parse(head), Err(Status::BadRequest), "{head:?}");
        }
    }

    #[test]
    fn other_versions_are_not_supported() {
        for v in ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2"] {
            let head = format!("GET /metrics {v}\r\n\r\n");
            assert_eq!(parse(&head), Err(Status::VersionNotSupported), "{v}");
        }
    }

    #[test]
    fn the_head_is_bounded() {
        let many = format!(
            "GET /metrics HTTP/1.0\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_FIELDS + 1)
        );
        assert_eq!(parse(&many), Err(Status::FieldsTooLarge));
        let big = format!(
            "GET /metrics HTTP/1.0\r\n{}\r\n",
            format!("X: {}\r\n", "y".repeat(1000)).repeat(9)
        );
        assert_eq!(parse(&big), Err(Status::FieldsTooLarge));
        let long_target = format!("GET /{} HTTP/1.0\r\n\r\n", "m".repeat(MAX_HEAD));
        assert_eq!(parse(&long_target), Err(Status::UriTooLong));
        let mut p = HeadParser::default();
        assert_eq!(p.too_long(), Status::UriTooLong);
        p.line(b"GET / HTTP/1.0").unwrap();
        assert_eq!(p.too_long(), Status::FieldsTooLarge);
    }
}
