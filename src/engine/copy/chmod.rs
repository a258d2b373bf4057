//! `--chmod` for COPY and ADD: an octal mode (`755`, `0644`, up to `07777`) or, as BuildKit
//! accepts since Dockerfile 1.14, a symbolic one (`u+x,g-w`, `a=rX`, `go=u-w`) with the
//! meaning of BSD `setmode(3)`, which BuildKit uses through its port
//! `github.com/tonistiigi/dchapes-mode`.
//!
//! Owns: parsing the flag value into a [`Chmod`] and computing the mode it gives an entry.
//! Must not touch the filesystem. The process umask plays no part: symbolic clauses without
//! `u`, `g`, `o` or `a` act on every class, as with the cleared umask `buildkitd` runs with
//! (moby/buildkit#6801 is about the daemon that does not clear it). `X` ("execute, if a
//! directory or already executable by someone") acts after every operator, as in BSD
//! `setmode(3)` and GNU `chmod(1)`: `u=rwX,go=rX` gives directories and executables 0755 and
//! other files 0644, the result `docker build` users get; after `-` it clears those bits under
//! the same condition. (The Go port drops `X` after `=` and `-`; docs/build.md records this.)

/// A parsed `--chmod` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chmod {
    form: Form,
    /// The value as written, for messages and cache keys.
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Form {
    /// Replace the permission bits, set-id and sticky bits included (tonistiigi/fsutil#168).
    Octal(u32),
    /// Commands applied in order to the entry's own mode.
    Symbolic(Vec<Command>),
}

/// Why a `--chmod` value is refused; the messages are BuildKit's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChmodError {
    /// Digits that are not an octal mode of at most `07777`.
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    NotOctal(String),
    /// A symbolic mode that does not parse.
    #[error("invalid chmod parameter: '{0}': invalid syntax")]
    Syntax(String),
}

const SET_UID: u32 = 0o4000;
const SET_GID: u32 = 0o2000;
const STICKY: u32 = 0o1000;
const USER: u32 = 0o700;
const GROUP: u32 = 0o070;
const OTHER: u32 = 0o007;
/// setmode's `STANDARD_BITS`: what `a` (or no class at all) covers; the sticky bit is added
/// only by `t`.
const STANDARD: u32 = SET_UID | SET_GID | USER | GROUP | OTHER;

/// One step of a symbolic mode, as `setmode` compiles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Set(u32),
    Clear(u32),
    /// `+X` or `=X`: set these bits if the original mode has an execute bit or is a directory.
    SetIfExecutable(u32),
    /// `-X`: clear these bits under the same condition.
    ClearIfExecutable(u32),
    /// `u`, `g` or `o` on the right of an operator: copy that class's current bits.
    Copy {
        from: Class,
        into: [bool; 3],
        /// Which target bits may change (`mask` when no class was named).
        bits: u32,
        set: bool,
        clear: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    User,
    Group,
    Other,
}

impl Class {
    fn shift(self) -> u32 {
        match self {
            Class::User => 6,
            Class::Group => 3,
            Class::Other => 0,
        }
    }
}

impl Chmod {
    /// Parse a `--chmod` value the way BuildKit's Dockerfile frontend does: octal first, and
    /// when that fails, a symbolic mode; a value that looks numeric gets the octal message.
    pub(crate) fn parse(text: &str) -> Result<Chmod, ChmodError> {
        let form = if text.starts_with(|c: char| c.is_ascii_digit()) {
            let mode = u32::from_str_radix(text, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| ChmodError::NotOctal(text.to_string()))?;
            Form::Octal(mode)
        } else {
            Form::Symbolic(
                parse_symbolic(text).ok_or_else(|| ChmodError::Syntax(text.to_string()))?,
            )
        };
        Ok(Chmod {
            form,
            text: text.to_string(),
        })
    }

    /// The value as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The permission bits (`0o7777` part) an entry gets, from its current `mode` (any file
    /// type bits are ignored) and whether it is a directory (for `X`).
    pub(crate) fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let commands = match &self.form {
            Form::Octal(m) => return *m,
            Form::Symbolic(commands) => commands,
        };
        let original = mode & 0o7777;
        let mut mode = original;
        for command in commands {
            match *command {
                Command::Set(bits) => mode |= bits,
                Command::Clear(bits) => mode &= !bits,
                Command::SetIfExecutable(bits) => {
                    if original & 0o111 != 0 || is_dir {
                        mode |= bits;
                    }
                }
                Command::ClearIfExecutable(bits) => {
                    if original & 0o111 != 0 || is_dir {
                        mode &= !bits;
                    }
                }
                Command::Copy {
                    from,
                    into,
                    bits,
                    set,
                    clear,
                } => {
                    let value = (mode >> from.shift()) & 0o7;
                    let classes = [Class::User, Class::Group, Class::Other];
                    for (class, _) in classes.iter().zip(into).filter(|(_, on)| *on) {
                        let shift = class.shift();
                        if clear {
                            let cleared = if set { 0o7 } else { value };
                            mode &= !((cleared << shift) & bits);
                        }
                        if set {
                            mode |= (value << shift) & bits;
                        }
                    }
                }
            }
        }
        mode
    }
}

impl std::fmt::Display for Chmod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Compile a symbolic mode into commands, following `setmode`'s grammar: comma-separated
/// clauses of `[ugoa]*` then one or more `[+-=]` each followed by `[rwxXst]*` or one of
/// `[ugo]`. `None` on a syntax error.
fn parse_symbolic(text: &str) -> Option<Vec<Command>> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut commands = Vec::new();
    // With a cleared umask, "no class named" means every bit.
    let mask = 0o7777;
    loop {
        let mut who = 0;
        while let Some(&b) = bytes.get(i) {
            who |= match b {
                b'a' => STANDARD,
                b'u' => SET_UID | USER,
                b'g' => SET_GID | GROUP,
                b'o' => OTHER,
                _ => break,
            };
            i += 1;
        }
        loop {
            let op = *bytes.get(i)?;
            if !matches!(op, b'+' | b'-' | b'=') {
                return None;
            }
            i += 1;
            who &= !STICKY;
            let mut perm = 0;
            let mut perm_x = 0;
            let mut equal_done = false;
            let target = |who: u32, perm: u32| if who != 0 { who & perm } else { mask & perm };
            loop {
                match bytes.get(i).copied() {
                    Some(b'r') => perm |= 0o444,
                    Some(b'w') => perm |= 0o222,
                    Some(b'x') => perm |= 0o111,
                    Some(b'X') => perm_x = 0o111,
                    // Set-id and sticky bits mean nothing for "other" alone.
                    Some(b's') if who == 0 || who & !OTHER != 0 => perm |= SET_UID | SET_GID,
                    Some(b't') if who == 0 || who & !OTHER != 0 => {
                        who |= STICKY;
                        perm |= STICKY;
                    }
                    Some(b's' | b't') => {}
                    Some(c @ (b'u' | b'g' | b'o')) => {
                        if perm != 0 {
                            push_op(&mut commands, op, who, target(who, perm));
                            perm = 0;
                        }
                        if op == b'=' {
                            equal_done = true;
                        }
                        if perm_x != 0 {
                            commands.push(conditional_x(op, target(who, perm_x)));
                            perm_x = 0;
                        }
                        let from = match c {
                            b'u' => Class::User,
                            b'g' => Class::Group,
                            _ => Class::Other,
                        };
                        let (into, bits) = if who != 0 {
                            let into = [who & 0o400 != 0, who & 0o040 != 0, who & 0o004 != 0];
                            (into, u32::MAX)
                        } else {
                            ([true; 3], mask)
                        };
                        commands.push(Command::Copy {
                            from,
                            into,
                            bits,
                            set: op != b'-',
                            clear: op != b'+',
                        });
                    }
                    _ => {
                        if perm != 0 || (op == b'=' && !equal_done) {
                            push_op(&mut commands, op, who, target(who, perm));
                        }
                        if perm_x != 0 {
                            commands.push(conditional_x(op, target(who, perm_x)));
                        }
                        break;
                    }
                }
                i += 1;
            }
            match bytes.get(i) {
                None => return Some(commands),
                Some(b',') => {
                    i += 1;
                    break;
                }
                Some(_) => continue,
            }
        }
        // `setmode` reads the next clause's first byte unconditionally: "u+x," is an error.
        bytes.get(i)?;
    }
}

/// The command for `X` after `op`: a conditional set, or a conditional clear after `-`.
fn conditional_x(op: u8, bits: u32) -> Command {
    if op == b'-' {
        Command::ClearIfExecutable(bits)
    } else {
        Command::SetIfExecutable(bits)
    }
}

/// `addcmd` for `+`, `-` and `=`: `=` first clears the named classes (every standard bit when
/// none is named), then sets.
fn push_op(commands: &mut Vec<Command>, op: u8, who: u32, bits: u32) {
    match op {
        b'+' => commands.push(Command::Set(bits)),
        b'-' => commands.push(Command::Clear(bits)),
        _ => {
            commands.push(Command::Clear(if who != 0 { who } else { STANDARD }));
            commands.push(Command::Set(bits));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Chmod, ChmodError};

    /// `modes!(value: (start mode, is_dir) => result, ...)`.
    macro_rules! modes {
        ($($value:expr => [$(($start:expr, $dir:expr) => $want:expr),*];)*) => {$(
            let chmod = Chmod::parse($value).unwrap();
            $( assert_eq!(
                chmod.apply($start, $dir), $want,
                "{:?} on {:o} (dir: {})", $value, $start, $dir
            ); )*
        )*};
    }

    #[test]
    fn octal_replaces_every_permission_bit() {
        modes! {
            "755" => [(0o644, false) => 0o755, (0o4711, false) => 0o755];
            "0644" => [(0o777, true) => 0o644];
            "4755" => [(0o600, false) => 0o4755];
            "0" => [(0o777, false) => 0];
        }
    }

    #[test]
    fn symbolic_follows_setmode() {
        modes! {
            "u+x" => [(0o644, false) => 0o744];
            "u+x,g-w" => [(0o664, false) => 0o744];
            // `X` after `=`: directories and executables get x, other files do not.
            "a=rX" => [(0o700, false) => 0o555, (0o600, true) => 0o555, (0o600, false) => 0o444];
            "u=rwX,go=rX" => [(0o700, true) => 0o755, (0o600, false) => 0o644, (0o711, false) => 0o755];
            // `X` after `-`: clears x from directories and executables only.
            "go-X" => [(0o755, true) => 0o744, (0o751, false) => 0o740, (0o644, false) => 0o644];
            "a=r,a+X" => [(0o700, false) => 0o555, (0o600, true) => 0o555, (0o600, false) => 0o444];
            "+X" => [(0o644, false) => 0o644, (0o744, false) => 0o755, (0o700, true) => 0o711];
            "go=" => [(0o777, false) => 0o700];
            "go=u-w" => [(0o754, false) => 0o755];
            "u=rwx,go=rx" => [(0o000, false) => 0o755];
            "=rw,+X" => [(0o711, false) => 0o777, (0o600, false) => 0o666];
            "o+s" => [(0o644, false) => 0o644];
            "u+s,+t" => [(0o755, true) => 0o5755];
            "g=u" => [(0o640, false) => 0o660];
            "-x" => [(0o755, false) => 0o644];
            "u-X" => [(0o755, false) => 0o655];
            "a+rw-x" => [(0o711, false) => 0o666];
        }
    }

    #[test]
    fn refused_values() {
        for (value, want) in [
            ("8", ChmodError::NotOctal("8".into())),
            ("10000", ChmodError::NotOctal("10000".into())),
            ("0x1", ChmodError::NotOctal("0x1".into())),
            ("u+x,", ChmodError::Syntax("u+x,".into())),
            ("u", ChmodError::Syntax("u".into())),
            ("", ChmodError::Syntax("".into())),
            ("z+x", ChmodError::Syntax("z+x".into())),
            ("u+q", ChmodError::Syntax("u+q".into())),
        ] {
            assert_eq!(Chmod::parse(value), Err(want), "{value:?}");
        }
        assert_eq!(
            ChmodError::NotOctal("8".into()).to_string(),
            "invalid chmod parameter: '8'. it should be octal string and between 0 and 07777"
        );
    }
}
