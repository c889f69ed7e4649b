//! Parsing one POP3 command line (without its CRLF).
//!
//! Keywords are case-insensitive. Arguments are separated by spaces (runs
//! of spaces and trailing spaces are tolerated) and may be at most 40
//! characters long (RFC 2449). `PASS` takes the rest of the line verbatim
//! as its single argument, so passwords may contain spaces (RFC 1939
//! section 7).
//!
//! RFC 1939 section 3 makes keywords and arguments of printable characters:
//! a line holding a control character (a NUL, a bare CR or LF, a TAB, DEL)
//! is rejected whole, before anything else is looked at. Arguments may be
//! UTF-8 beyond ASCII.

/// The longest argument RFC 2449 allows.
pub(crate) const MAX_ARG_LEN: usize = 40;

/// The longest command line, CRLF included (RFC 2449 section 4).
pub(crate) const MAX_LINE_LEN: usize = 255;

/// A parsed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command<'a> {
    User(&'a str),
    Pass(&'a [u8]),
    Apop { name: &'a str, digest: &'a str },
    Stat,
    List(Option<usize>),
    Retr(usize),
    Dele(usize),
    Noop,
    Rset,
    Quit,
    Top { msg: usize, lines: usize },
    Uidl(Option<usize>),
    Capa,
}

/// Why a command line was rejected; the text is sent after `-ERR `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    Empty,
    Unknown,
    ArgumentTooLong,
    NotUtf8,
    Usage(&'static str),
    BadNumber,
    ControlCharacter,
}

impl ParseError {
    pub(crate) fn message(&self) -> &'static str {
        match self {
            Self::Empty => "empty command",
            Self::Unknown => "unknown command",
            Self::ArgumentTooLong => "argument too long (at most 40 characters)",
            Self::NotUtf8 => "argument is not valid UTF-8",
            Self::Usage(usage) => usage,
            Self::BadNumber => "invalid number",
            Self::ControlCharacter => "command contains a control character",
        }
    }
}

/// Parses one command line.
pub(crate) fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    if line.iter().any(u8::is_ascii_control) {
        return Err(ParseError::ControlCharacter);
    }
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let keyword = words.next().ok_or(ParseError::Empty)?;
    let keyword = keyword.to_ascii_uppercase();

    if keyword == b"PASS" {
        return parse_pass(line);
    }
    let args: Vec<&[u8]> = words.collect();
    if args.iter().any(|arg| arg.len() > MAX_ARG_LEN) {
        return Err(ParseError::ArgumentTooLong);
    }
    let args: Vec<&str> = args
        .into_iter()
        .map(std::str::from_utf8)
        .collect::<Result<_, _>>()
        .map_err(|_| ParseError::NotUtf8)?;

    let command = match (keyword.as_slice(), args.as_slice()) {
        (b"USER", [name]) => Command::User(name),
        (b"USER", _) => return Err(ParseError::Usage("usage: USER name")),
        (b"APOP", [name, digest]) => Command::Apop { name, digest },
        (b"APOP", _) => return Err(ParseError::Usage("usage: APOP name digest")),
        (b"STAT", []) => Command::Stat,
        (b"STAT", _) => return Err(ParseError::Usage("usage: STAT")),
        (b"LIST", []) => Command::List(None),
        (b"LIST", [msg]) => Command::List(Some(number(msg)?)),
        (b"LIST", _) => return Err(ParseError::Usage("usage: LIST [msg]")),
        (b"RETR", [msg]) => Command::Retr(number(msg)?),
        (b"RETR", _) => return Err(ParseError::Usage("usage: RETR msg")),
        (b"DELE", [msg]) => Command::Dele(number(msg)?),
        (b"DELE", _) => return Err(ParseError::Usage("usage: DELE msg")),
        (b"NOOP", []) => Command::Noop,
        (b"NOOP", _) => return Err(ParseError::Usage("usage: NOOP")),
        (b"RSET", []) => Command::Rset,
        (b"RSET", _) => return Err(ParseError::Usage("usage: RSET")),
        (b"QUIT", []) => Command::Quit,
        (b"QUIT", _) => return Err(ParseError::Usage("usage: QUIT")),
        (b"TOP", [msg, lines]) => Command::Top {
            msg: number(msg)?,
            lines: number(lines)?,
        },
        (b"TOP", _) => return Err(ParseError::Usage("usage: TOP msg n")),
        (b"UIDL", []) => Command::Uidl(None),
        (b"UIDL", [msg]) => Command::Uidl(Some(number(msg)?)),
        (b"UIDL", _) => return Err(ParseError::Usage("usage: UIDL [msg]")),
        (b"CAPA", []) => Command::Capa,
        (b"CAPA", _) => return Err(ParseError::Usage("usage: CAPA")),
        _ => return Err(ParseError::Unknown),
    };
    Ok(command)
}

/// `PASS` takes everything after `PASS ` as the password.
fn parse_pass(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let start = line.iter().position(|&b| b != b' ').unwrap_or(0);
    let password = line.get(start + 5..).unwrap_or_default();
    if line.get(start + 4) != Some(&b' ') || password.is_empty() {
        return Err(ParseError::Usage("usage: PASS password"));
    }
    if password.len() > MAX_ARG_LEN {
        return Err(ParseError::ArgumentTooLong);
    }
    Ok(Command::Pass(password))
}

impl Command<'_> {
    /// The command as a line (without CRLF) that [`parse`] reads back as
    /// the same command: the keyword in upper case, arguments separated by
    /// one space.
    pub(crate) fn to_line(self) -> Vec<u8> {
        let text = match self {
            Command::User(name) => format!("USER {name}"),
            Command::Pass(password) => return [b"PASS ", password].concat(),
            Command::Apop { name, digest } => format!("APOP {name} {digest}"),
            Command::Stat => "STAT".to_owned(),
            Command::List(None) => "LIST".to_owned(),
            Command::List(Some(msg)) => format!("LIST {msg}"),
            Command::Retr(msg) => format!("RETR {msg}"),
            Command::Dele(msg) => format!("DELE {msg}"),
            Command::Noop => "NOOP".to_owned(),
            Command::Rset => "RSET".to_owned(),
            Command::Quit => "QUIT".to_owned(),
            Command::Top { msg, lines } => format!("TOP {msg} {lines}"),
            Command::Uidl(None) => "UIDL".to_owned(),
            Command::Uidl(Some(msg)) => format!("UIDL {msg}"),
            Command::Capa => "CAPA".to_owned(),
        };
        text.into_bytes()
    }
}

/// A non-negative decimal number. Values too large for `usize` saturate:
/// they name no message, and as a `TOP` line count they mean "all".
fn number(arg: &str) -> Result<usize, ParseError> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber);
    }
    Ok(arg.parse().unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_case_insensitively() {
        assert_eq!(parse(b"user alice"), Ok(Command::User("alice")));
        assert_eq!(
            parse(b"PaSs secret with spaces "),
            Ok(Command::Pass(b"secret with spaces "))
        );
        assert_eq!(
            parse(b"APOP bob c4c9334bac560ecc979e58001b3e22fb"),
            Ok(Command::Apop {
                name: "bob",
                digest: "c4c9334bac560ecc979e58001b3e22fb"
            })
        );
        assert_eq!(parse(b"stat"), Ok(Command::Stat));
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"list 2"), Ok(Command::List(Some(2))));
        assert_eq!(parse(b"Retr 1"), Ok(Command::Retr(1)));
        assert_eq!(parse(b"DELE 3"), Ok(Command::Dele(3)));
        assert_eq!(parse(b"noop"), Ok(Command::Noop));
        assert_eq!(parse(b"rset"), Ok(Command::Rset));
        assert_eq!(parse(b"quit"), Ok(Command::Quit));
        assert_eq!(parse(b"top 1 0"), Ok(Command::Top { msg: 1, lines: 0 }));
        assert_eq!(parse(b"UIDL"), Ok(Command::Uidl(None)));
        assert_eq!(parse(b"uidl 7"), Ok(Command::Uidl(Some(7))));
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
    }

    #[test]
    fn tolerates_extra_spaces_between_arguments() {
        assert_eq!(parse(b"TOP  1   5 "), Ok(Command::Top { msg: 1, lines: 5 }));
        assert_eq!(parse(b"STAT "), Ok(Command::Stat));
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"   "), Err(ParseError::Empty));
        assert_eq!(parse(b"HELO x"), Err(ParseError::Unknown));
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::Unknown));
        assert_eq!(parse(b"RETR"), Err(ParseError::Usage("usage: RETR msg")));
        assert_eq!(parse(b"STAT 1"), Err(ParseError::Usage("usage: STAT")));
        assert_eq!(
            parse(b"USER a b"),
            Err(ParseError::Usage("usage: USER name"))
        );
        assert_eq!(
            parse(b"PASS"),
            Err(ParseError::Usage("usage: PASS password"))
        );
        assert_eq!(
            parse(b"PASS "),
            Err(ParseError::Usage("usage: PASS password"))
        );
        assert_eq!(parse(b"PASSWORD x"), Err(ParseError::Unknown));
        assert_eq!(parse(b"RETR -1"), Err(ParseError::BadNumber));
        assert_eq!(parse(b"RETR +1"), Err(ParseError::BadNumber));
        assert_eq!(parse(b"TOP 1 x"), Err(ParseError::BadNumber));
        assert_eq!(parse(b"USER \xff"), Err(ParseError::NotUtf8));
    }

    #[test]
    fn control_characters_reject_the_line() {
        for line in [
            &b"USER al\0ice"[..],
            b"\0",
            b"\0USER alice",
            b"PASS secret\0",
            b"PASS sec\rret",
            b"NOOP\n",
            b"LIST\t1",
            b"RETR 1\x7f",
            b"HELO \x1b[2J",
        ] {
            assert_eq!(parse(line), Err(ParseError::ControlCharacter), "{line:?}");
        }
        // Bytes beyond ASCII are not control characters.
        assert_eq!(parse("USER zoë".as_bytes()), Ok(Command::User("zoë")));
        assert_eq!(parse(b"PASS \x80\xff"), Ok(Command::Pass(b"\x80\xff")));
    }

    #[test]
    fn every_command_reads_back_from_its_line() {
        let commands = [
            Command::User("alice"),
            Command::Pass(b" pass with  spaces "),
            Command::Apop {
                name: "bob",
                digest: "c4c9334bac560ecc979e58001b3e22fb",
            },
            Command::Stat,
            Command::List(None),
            Command::List(Some(2)),
            Command::Retr(usize::MAX),
            Command::Dele(3),
            Command::Noop,
            Command::Rset,
            Command::Quit,
            Command::Top {
                msg: 1,
                lines: usize::MAX,
            },
            Command::Uidl(None),
            Command::Uidl(Some(0)),
            Command::Capa,
        ];
        for command in commands {
            assert_eq!(parse(&command.to_line()), Ok(command));
        }
        assert_eq!(Command::Top { msg: 1, lines: 5 }.to_line(), b"TOP 1 5");
    }

    #[test]
    fn arguments_are_limited_to_40_characters() {
        let ok = format!("USER {}", "a".repeat(40));
        let long = format!("USER {}", "a".repeat(41));
        assert!(parse(ok.as_bytes()).is_ok());
        assert_eq!(parse(long.as_bytes()), Err(ParseError::ArgumentTooLong));
        let long_pass = format!("PASS {}", "p".repeat(41));
        assert_eq!(
            parse(long_pass.as_bytes()),
            Err(ParseError::ArgumentTooLong)
        );
        let long_number = format!("RETR {}", "9".repeat(41));
        assert_eq!(
            parse(long_number.as_bytes()),
            Err(ParseError::ArgumentTooLong)
        );
    }

    #[test]
    fn huge_numbers_saturate() {
        assert_eq!(
            parse(b"RETR 99999999999999999999999"),
            Ok(Command::Retr(usize::MAX))
        );
        assert_eq!(
            parse(b"TOP 1 99999999999999999999999"),
            Ok(Command::Top {
                msg: 1,
                lines: usize::MAX
            })
        );
    }
}
