//! HTTP/1.1 responses of the metrics server: the status line, the few
//! header fields it sends (`Date`, `Content-Type`, `Content-Length`,
//! `Allow` on a 405, `Connection: close`) and the body. Sans IO: the time
//! for `Date` is passed in.

use std::time::{SystemTime, UNIX_EPOCH};

/// The statuses the metrics server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    UriTooLong,
    FieldsTooLarge,
    VersionNotSupported,
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::UriTooLong => 414,
            Status::FieldsTooLarge => 431,
            Status::VersionNotSupported => 505,
        }
    }

    /// The reason phrase (RFC 9110; 431 from RFC 6585).
    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::UriTooLong => "URI Too Long",
            Status::FieldsTooLarge => "Request Header Fields Too Large",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// The methods the metrics path allows (the `Allow` field of a 405).
pub const ALLOWED: &str = "GET, HEAD";

/// A response, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub content_type: &'static str,
    pub body: String,
    /// The answer to a `HEAD`: the fields of the `GET` answer, no body.
    pub head_only: bool,
}

impl Response {
    /// A 200 with `body`.
    pub fn ok(content_type: &'static str, body: String) -> Self {
        Response {
            status: Status::Ok,
            content_type,
            body,
            head_only: false,
        }
    }

    /// An error status, with its code and reason as a plain-text body.
    pub fn error(status: Status) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{} {}\n", status.code(), status.reason()),
            head_only: false,
        }
    }

    /// The response's bytes, dated `now`. The connection closes after it.
    pub fn to_bytes(&self, now: SystemTime) -> Vec<u8> {
        let status = self.status;
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            status.code(),
            status.reason(),
            http_date(now),
            self.content_type,
            self.body.len()
        );
        if status == Status::MethodNotAllowed {
            head.push_str("Allow: ");
            head.push_str(ALLOWED);
            head.push_str("\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// `t` as an HTTP date (RFC 9110's IMF-fixdate): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates_are_imf_fixdates() {
        for (secs, date) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 GMT"),
        ] {
            assert_eq!(http_date(at(secs)), date);
        }
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let ok = Response::ok("text/plain", "abc".into());
        assert_eq!(
            String::from_utf8(ok.to_bytes(at(0))).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Content-Type: text/plain\r\nContent-Length: 3\r\n\
             Connection: close\r\n\r\nabc"
        );
        let head = Response {
            head_only: true,
            ..ok
        };
        assert!(
            head.to_bytes(at(0))
                .ends_with(b"Content-Length: 3\r\nConnection: close\r\n\r\n")
        );
        let not_allowed = Response::error(Status::MethodNotAllowed).to_bytes(at(0));
        let text = String::from_utf8(not_allowed).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nAllow: GET, HEAD\r\n"));
        assert!(text.ends_with("\r\n\r\n405 Method Not Allowed\n"));
    }
}
