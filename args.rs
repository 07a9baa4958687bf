//! CLI argument normalization: the Go tool's command lines rewritten into the form argh takes,
//! in this one place, before argh parses them.
//!
//! What each flag is (a switch or an option with a value, its short form, repeatable or not)
//! comes from argh's own description of the argument structs (`ArgsInfo`), so a flag added to
//! cli.rs is known here without being listed twice. The Go spellings handled:
//!
//! - `-h` is `--help`; `--flag=value`, `-c=5`, `-c5` are `--flag value`, `-c 5`;
//! - `--camelCase` is `--camel-case`;
//! - `--switch=true` is `--switch`, `--switch=false` drops it, or is `--no-switch` where the
//!   command has that switch (`--progress=false`); any other value is an error;
//! - an option given twice: the last wins, with a note (repeatable options keep accumulating);
//! - comma lists where the Go tool took them: `serve -l a:1,b:2`, `connect a:1,b:2`.

use crate::cli::Args;
use argh::{ArgsInfo, FlagInfoKind, Optionality};

/// One flag of a (sub)command, as argh knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The long name without the dashes: `message-bytes`.
    pub long: String,
    pub short: Option<char>,
    /// A switch takes no value.
    pub switch: bool,
    /// argh collects every occurrence (a `Vec` field): no last-wins there.
    pub repeating: bool,
    pub description: String,
}

/// One command's flags and subcommands (`""` is the top level).
#[derive(Debug, Clone)]
pub struct CommandFlags {
    pub name: String,
    pub description: String,
    pub flags: Vec<Flag>,
}

/// Every command: the top level (`name` empty) first, then each subcommand.
pub fn commands() -> Vec<CommandFlags> {
    let info = Args::get_args_info();
    let top = CommandFlags {
        name: String::new(),
        description: info.description.to_string(),
        flags: info.flags.iter().map(flag_of).collect(),
    };
    let subs = info.commands.iter().map(|s| CommandFlags {
        name: s.name.to_string(),
        description: s.command.description.to_string(),
        flags: s.command.flags.iter().map(flag_of).collect(),
    });
    std::iter::once(top).chain(subs).collect()
}

fn flag_of(f: &argh::FlagInfo<'_>) -> Flag {
    Flag {
        long: f.long.trim_start_matches('-').to_string(),
        short: f.short,
        switch: matches!(f.kind, FlagInfoKind::Switch),
        repeating: matches!(f.optionality, Optionality::Repeating),
        description: f.description.to_string(),
    }
}

/// Where the Go tool took a comma-separated list: (subcommand, flag long name or `""` for the
/// positional arguments).
const COMMA_LISTS: &[(&str, &str)] = &[("serve", "listen-addr"), ("serve", ""), ("connect", "")];

/// The argument vector for argh, and the notes to print on stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Normalized {
    pub argv: Vec<String>,
    pub notes: Vec<String>,
}

/// One argument after reading: a known flag with its value, or anything else as it was.
#[derive(Debug)]
enum Item {
    /// `spelled` is how argh takes it (`-d`, `--duration`); `value` is None for a switch,
    /// `given` how the user wrote the flag (for the note).
    Flag {
        flag: Flag,
        spelled: String,
        given: String,
        value: Option<String>,
        on: bool,
    },
    Positional(String),
    Raw(String),
}

/// Rewrite `argv` (without the program name). An error is a one-line usage message.
pub fn normalize(argv: &[String]) -> Result<Normalized, String> {
    let cmds = commands();
    let mut cmd = &cmds[0];
    let mut items = Vec::with_capacity(argv.len());
    let mut rest = argv.iter();
    while let Some(a) = rest.next() {
        if a == "--" {
            items.push(Item::Raw(a.clone()));
            items.extend(rest.by_ref().map(|r| Item::Raw(r.clone())));
            break;
        }
        if cmd.name.is_empty() {
            if let Some(sub) = cmds.iter().skip(1).find(|c| c.name == *a) {
                cmd = sub;
                items.push(Item::Raw(a.clone()));
                continue;
            }
        }
        items.push(read_one(cmd, a, &mut rest)?);
    }
    Ok(finish(cmd, items))
}

/// Read the argument `a` of command `cmd`, taking its value from `rest` when it has one.
fn read_one(
    cmd: &CommandFlags,
    a: &str,
    rest: &mut std::slice::Iter<'_, String>,
) -> Result<Item, String> {
    let Some((flag, spelled, given, inline)) = lookup(cmd, a) else {
        return Ok(if a.starts_with('-') && a.len() > 1 {
            Item::Raw(help_alias(cmd, a))
        } else {
            Item::Positional(a.to_string())
        });
    };
    if flag.switch {
        let on = match inline.as_deref() {
            None => true,
            Some(v) => go_bool(v).ok_or_else(|| {
                format!("invalid {given}={v}: a switch takes true or false (or none)")
            })?,
        };
        return Ok(Item::Flag {
            flag,
            spelled,
            given,
            value: None,
            on,
        });
    }
    let value = match inline {
        Some(v) => v,
        // No value left: argh reports the missing value in its words.
        None => match rest.next() {
            Some(v) => v.clone(),
            None => return Ok(Item::Raw(spelled)),
        },
    };
    Ok(Item::Flag {
        flag,
        spelled,
        given,
        value: Some(value),
        on: true,
    })
}

/// `-h` means `--help` wherever no flag of the command has the short form `h`.
fn help_alias(cmd: &CommandFlags, a: &str) -> String {
    let h_taken = cmd.flags.iter().any(|f| f.short == Some('h'));
    if a == "-h" && !h_taken {
        "--help".to_string()
    } else {
        a.to_string()
    }
}

/// The flag `a` names, how argh spells it, how the user did, and a value written into `a`.
fn lookup(cmd: &CommandFlags, a: &str) -> Option<(Flag, String, String, Option<String>)> {
    if let Some(long) = a.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        let kebab = kebab_case(name);
        let flag = cmd.flags.iter().find(|f| f.long == kebab)?;
        return Some((
            flag.clone(),
            format!("--{kebab}"),
            format!("--{name}"),
            value,
        ));
    }
    let mut chars = a.strip_prefix('-')?.chars();
    let c = chars.next()?;
    let flag = cmd.flags.iter().find(|f| f.short == Some(c))?;
    let tail = chars.as_str();
    let value = match tail.strip_prefix('=') {
        Some(v) => Some(v.to_string()),
        None if tail.is_empty() => None,
        // `-c5`; a switch with letters after it is no spelling of ours.
        None if flag.switch => return None,
        None => Some(tail.to_string()),
    };
    let spelled = format!("-{c}");
    Some((flag.clone(), spelled.clone(), spelled, value))
}

/// `messageBytes` → `message-bytes`.
fn kebab_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for ch in name.chars() {
        if ch.is_ascii_uppercase() {
            out.push('-');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// A boolean as Go's `strconv.ParseBool` reads it.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Keep the last of each non-repeatable flag (noting the repeat), split comma lists, and
/// write the argument vector.
fn finish(cmd: &CommandFlags, items: Vec<Item>) -> Normalized {
    let sub = cmd.name.as_str();
    let mut notes = Vec::new();
    let keep = last_of_each(&items, &mut notes);
    let addrs_file = items.iter().zip(&keep).any(|(it, k)| {
        *k && matches!(it, Item::Flag { flag, on: true, .. } if flag.long == "addrs-file")
    });
    let mut argv = Vec::with_capacity(items.len() * 2);
    for (item, keep) in items.into_iter().zip(keep) {
        match item {
            _ if !keep => {}
            Item::Raw(a) => argv.push(a),
            Item::Positional(p) if comma_list(sub, "") && !addrs_file => {
                argv.extend(split_list(&p));
            }
            Item::Positional(p) => argv.push(p),
            Item::Flag {
                on: false, flag, ..
            } => {
                // A switch that is on by default elsewhere (`--progress` on a terminal) has a
                // `--no-` form: `=false` must turn it off, not leave the default.
                let negation = format!("no-{}", flag.long);
                if cmd.flags.iter().any(|f| f.switch && f.long == negation) {
                    argv.push(format!("--{negation}"));
                }
            }
            Item::Flag {
                spelled,
                value: None,
                ..
            } => argv.push(spelled),
            Item::Flag {
                flag,
                spelled,
                value: Some(v),
                ..
            } => {
                let parts = if comma_list(sub, &flag.long) {
                    split_list(&v)
                } else {
                    vec![v]
                };
                for p in parts {
                    argv.push(spelled.clone());
                    argv.push(p);
                }
            }
        }
    }
    Normalized { argv, notes }
}

/// Which items survive: of a flag argh takes once, only its last occurrence; one note per
/// flag given more than once.
fn last_of_each(items: &[Item], notes: &mut Vec<String>) -> Vec<bool> {
    let mut keep = vec![true; items.len()];
    let mut seen: Vec<(String, usize, usize)> = Vec::new(); // (long, last index, count)
    for (i, item) in items.iter().enumerate() {
        let Item::Flag { flag, .. } = item else {
            continue;
        };
        if flag.repeating {
            continue;
        }
        match seen.iter_mut().find(|(l, _, _)| *l == flag.long) {
            Some(entry) => {
                keep[entry.1] = false;
                entry.1 = i;
                entry.2 += 1;
            }
            None => seen.push((flag.long.clone(), i, 1)),
        }
    }
    for (_, last, count) in seen.into_iter().filter(|s| s.2 > 1) {
        if let Item::Flag {
            given, value, on, ..
        } = &items[last]
        {
            let times = if count == 2 {
                "twice".to_string()
            } else {
                format!("{count} times")
            };
            let shown = value.clone().unwrap_or_else(|| on.to_string());
            notes.push(format!(
                "note: {given} given {times}; the last ({shown}) is used"
            ));
        }
    }
    keep
}

fn comma_list(sub: &str, long: &str) -> bool {
    COMMA_LISTS.contains(&(sub, long))
}

/// `a,b` → `[a, b]`; empty pieces (`a,`) are dropped, but a value of only commas is kept
/// whole so that the parser names it.
fn split_list(v: &str) -> Vec<String> {
    let parts: Vec<String> = v
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if parts.is_empty() {
        vec![v.to_string()]
    } else {
        parts
    }
}

/// The shells `connperf completion` writes a script for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// The completion script for `shell` (None for a shell not in `SHELLS`): subcommands, their
/// flags (long and short) and `completion`'s shells, from the same table as `normalize`.
pub fn completion_script(shell: &str) -> Option<String> {
    let cmds = commands();
    match shell {
        "bash" => Some(bash(&cmds)),
        "zsh" => Some(zsh(&cmds)),
        "fish" => Some(fish(&cmds)),
        _ => None,
    }
}

/// What may follow `cmd`: its flags (and `-h`), its subcommands or shells.
fn words_of(cmds: &[CommandFlags], cmd: &CommandFlags) -> String {
    let mut words: Vec<String> = Vec::new();
    if cmd.name.is_empty() {
        words.extend(cmds.iter().skip(1).map(|c| c.name.clone()));
    }
    if cmd.name == "completion" {
        words.extend(SHELLS.iter().map(|s| s.to_string()));
    }
    for f in &cmd.flags {
        words.extend(f.short.map(|c| format!("-{c}")));
        words.push(format!("--{}", f.long));
    }
    words.push("-h".into());
    words.join(" ")
}

fn sub_names(cmds: &[CommandFlags]) -> String {
    let names: Vec<&str> = cmds.iter().skip(1).map(|c| c.name.as_str()).collect();
    names.join("|")
}

fn bash(cmds: &[CommandFlags]) -> String {
    let mut cases = String::new();
    for c in cmds {
        let pat = if c.name.is_empty() { "*" } else { &c.name };
        cases += &format!("        {pat}) words=\"{}\" ;;\n", words_of(cmds, c));
    }
    format!(
        "# bash completion for connperf: source <(connperf completion bash)\n\
         _connperf() {{\n    local cur=\"${{COMP_WORDS[COMP_CWORD]}}\" sub=\"\" words i\n    \
         for ((i = 1; i < COMP_CWORD; i++)); do\n        case \"${{COMP_WORDS[i]}}\" in\n            \
         {subs}) sub=\"${{COMP_WORDS[i]}}\"; break ;;\n        esac\n    done\n    \
         case \"$sub\" in\n{cases}    esac\n    \
         COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}}\n\
         complete -F _connperf connperf\n",
        subs = sub_names(cmds),
        cases = reorder_default_last(&cases),
    )
}

/// The top level's `*)` case was written first; a shell case must list it last.
fn reorder_default_last(cases: &str) -> String {
    let mut lines: Vec<&str> = cases.lines().collect();
    let top = lines.remove(0);
    lines.push(top);
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn zsh(cmds: &[CommandFlags]) -> String {
    let mut cases = String::new();
    for c in cmds {
        let pat = if c.name.is_empty() { "*" } else { &c.name };
        cases += &format!("        {pat}) compadd -- {} ;;\n", words_of(cmds, c));
    }
    format!(
        "#compdef connperf\n# zsh completion for connperf: source <(connperf completion zsh), or save as _connperf on $fpath\n\
         _connperf() {{\n    local sub w\n    for w in ${{words[2,CURRENT-1]}}; do\n        \
         case $w in\n            {subs}) sub=$w; break ;;\n        esac\n    done\n    \
         case $sub in\n{cases}    esac\n}}\n\
         if [[ $funcstack[1] == _connperf ]]; then _connperf \"$@\"; else compdef _connperf connperf; fi\n",
        subs = sub_names(cmds),
        cases = reorder_default_last(&cases),
    )
}

/// Single-quoted for fish.
fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fish(cmds: &[CommandFlags]) -> String {
    let mut out = String::from(
        "# fish completion for connperf: connperf completion fish > ~/.config/fish/completions/connperf.fish\ncomplete -c connperf -f\n",
    );
    for c in cmds {
        let cond = if c.name.is_empty() {
            "__fish_use_subcommand".to_string()
        } else {
            let line = format!("-a {} -d {}", c.name, fish_quote(&c.description));
            out += &format!("complete -c connperf -n __fish_use_subcommand {line}\n");
            format!("'__fish_seen_subcommand_from {}'", c.name)
        };
        for f in &c.flags {
            let short = f.short.map(|s| format!(" -s {s}")).unwrap_or_default();
            let takes = if f.switch { "" } else { " -r" };
            let desc = fish_quote(&f.description);
            out += &format!(
                "complete -c connperf -n {cond}{short} -l {}{takes} -d {desc}\n",
                f.long
            );
        }
        if c.name == "completion" {
            out += &format!("complete -c connperf -n {cond} -a '{}'\n", SHELLS.join(" "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[&str]) -> Normalized {
        let argv: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        normalize(&argv).unwrap()
    }

    fn argv(v: &[&str]) -> Vec<String> {
        norm(v).argv
    }

    #[test]
    fn the_flag_table_comes_from_argh() {
        let cmds = commands();
        let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[..4], ["", "serve", "connect", "merge"]);
        let connect = &cmds[2].flags;
        let c = connect.iter().find(|f| f.long == "connections").unwrap();
        assert_eq!((c.short, c.switch, c.repeating), (Some('c'), false, false));
        let s = connect
            .iter()
            .find(|f| f.long == "show-only-results")
            .unwrap();
        assert!(s.switch);
        assert!(
            connect
                .iter()
                .find(|f| f.long == "label")
                .unwrap()
                .repeating
        );
        assert!(
            cmds[1]
                .flags
                .iter()
                .find(|f| f.long == "listen-addr")
                .unwrap()
                .repeating
        );
    }

    #[test]
    fn short_forms_with_glued_or_equals_values() {
        assert_eq!(
            argv(&["connect", "-c5", "-r=100", "-d1s"]),
            ["connect", "-c", "5", "-r", "100", "-d", "1s"]
        );
        assert_eq!(argv(&["connect", "-c", "5"]), ["connect", "-c", "5"]);
        // A negative value is a value, not a flag.
        assert_eq!(argv(&["connect", "-r", "-1"]), ["connect", "-r", "-1"]);
    }

    #[test]
    fn long_forms_and_camel_case() {
        assert_eq!(
            argv(&["connect", "--messageBytes=32", "--rate", "5"]),
            ["connect", "--message-bytes", "32", "--rate", "5"]
        );
        assert_eq!(
            argv(&["connect", "--percentiles=50,99"]),
            ["connect", "--percentiles", "50,99"]
        );
    }

    #[test]
    fn switches_take_go_booleans() {
        assert_eq!(
            argv(&["connect", "--show-only-results=true"]),
            ["connect", "--show-only-results"]
        );
        assert_eq!(argv(&["connect", "--showOnlyResults=false"]), ["connect"]);
        assert_eq!(
            argv(&["connect", "--progress=false"]),
            ["connect", "--no-progress"]
        );
        assert_eq!(
            argv(&["connect", "--progress=true"]),
            ["connect", "--progress"]
        );
        assert_eq!(
            argv(&["connect", "--jsonlines=1", "--spin=F"]),
            ["connect", "--jsonlines"]
        );
        let e = normalize(&["connect".into(), "--jsonlines=yes".into()]).unwrap_err();
        assert_eq!(
            e,
            "invalid --jsonlines=yes: a switch takes true or false (or none)"
        );
    }

    #[test]
    fn help_everywhere() {
        for sub in [&[][..], &["serve"], &["connect"], &["merge"]] {
            let mut v = sub.to_vec();
            v.push("-h");
            assert_eq!(argv(&v).last().unwrap(), "--help", "{v:?}");
        }
    }

    #[test]
    fn the_last_of_a_repeated_option_wins_with_one_note() {
        let n = norm(&[
            "connect",
            "-d",
            "1s",
            "-d2s",
            "--duration=3s",
            "-c",
            "1",
            "-c",
            "2",
        ]);
        assert_eq!(n.argv, ["connect", "--duration", "3s", "-c", "2"]);
        assert_eq!(
            n.notes,
            [
                "note: --duration given 3 times; the last (3s) is used",
                "note: -c given twice; the last (2) is used"
            ]
        );
        let n = norm(&["connect", "--spin", "--spin=false"]);
        assert_eq!(n.argv, ["connect"]);
        assert_eq!(
            n.notes,
            ["note: --spin given twice; the last (false) is used"]
        );
    }

    #[test]
    fn repeatable_options_accumulate_and_comma_lists_split() {
        let n = norm(&["serve", "-l", "a:1,b:2", "--listen-addr=c:3", "d:4,e:5"]);
        assert_eq!(
            n.argv,
            [
                "serve",
                "-l",
                "a:1",
                "-l",
                "b:2",
                "--listen-addr",
                "c:3",
                "d:4",
                "e:5"
            ]
        );
        assert!(n.notes.is_empty());
        let n = norm(&[
            "connect",
            "--label",
            "a=1,2",
            "--label",
            "b=2",
            "x:1,[::1]:2",
        ]);
        assert_eq!(
            n.argv,
            ["connect", "--label", "a=1,2", "--label", "b=2", "x:1", "[::1]:2"]
        );
        // A file of addresses keeps its name whole; `--` ends all rewriting.
        assert_eq!(
            argv(&["connect", "--addrs-file", "a,b"]),
            ["connect", "--addrs-file", "a,b"]
        );
        assert_eq!(
            argv(&["connect", "--", "-c5", "a,b"]),
            ["connect", "--", "-c5", "a,b"]
        );
    }

    #[test]
    fn unknown_and_incomplete_arguments_go_to_argh_as_they_were() {
        assert_eq!(
            argv(&["connect", "--bogus=1", "-x5"]),
            ["connect", "--bogus=1", "-x5"]
        );
        assert_eq!(argv(&["connect", "-d"]), ["connect", "-d"]);
        assert_eq!(argv(&["frob", "-c5"]), ["frob", "-c5"]);
    }

    #[test]
    fn completion_scripts_name_every_flag() {
        for shell in SHELLS {
            let script = completion_script(shell).unwrap();
            for want in ["connect", "message-bytes", "listen-addr", "-c", "fish"] {
                assert!(script.contains(want), "{shell}: no {want}");
            }
        }
        assert_eq!(completion_script("tcsh"), None);
    }
}
