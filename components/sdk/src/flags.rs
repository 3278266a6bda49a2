//! Command-line flags for inferlets, declared once: parsed from
//! `runtime.get-arguments`, checked, and turned into `--help`.
//!
//! ```ignore
//! let Some(args) = Flags::new("greeter", "Greets someone.")
//!     .value("--name", "TEXT", "who to greet (required)")
//!     .value_or("--times", "N", "1", "how many times")
//!     .switch("--shout", "in capitals")
//!     .parse()?
//! else {
//!     return Ok(()); // `--help` was asked for and printed
//! };
//! let name: String = args.get("--name")?;
//! let times: usize = args.get("--times")?;
//! ```

use std::collections::HashMap;
use std::str::FromStr;

/// One declared flag.
struct Flag {
    name: &'static str,
    /// What its value is called in the help (`None`: a switch, no value).
    value: Option<&'static str>,
    default: Option<&'static str>,
    help: &'static str,
}

/// An inferlet's flags, declared before parsing.
pub struct Flags {
    program: &'static str,
    about: &'static str,
    flags: Vec<Flag>,
}

/// The arguments, parsed: values by flag name.
#[derive(Debug)]
pub struct Args {
    values: HashMap<&'static str, String>,
    switches: Vec<&'static str>,
}

impl Flags {
    pub fn new(program: &'static str, about: &'static str) -> Self {
        Self { program, about, flags: Vec::new() }
    }

    /// A flag with a value and no default.
    pub fn value(mut self, name: &'static str, value: &'static str, help: &'static str) -> Self {
        self.flags.push(Flag { name, value: Some(value), default: None, help });
        self
    }

    /// A flag with a value, `default` when it is not given.
    pub fn value_or(mut self, name: &'static str, value: &'static str, default: &'static str, help: &'static str) -> Self {
        self.flags.push(Flag { name, value: Some(value), default: Some(default), help });
        self
    }

    /// A flag without a value: on when given.
    pub fn switch(mut self, name: &'static str, help: &'static str) -> Self {
        self.flags.push(Flag { name, value: None, default: None, help });
        self
    }

    /// What `--help` prints.
    pub fn help(&self) -> String {
        let mut text = format!("{}: {}\n\nUsage: {} [FLAGS]\n\nFlags:\n", self.program, self.about, self.program);
        let spelled: Vec<String> = self.flags.iter().map(|f| f.value.map_or_else(|| f.name.to_string(), |v| format!("{} {v}", f.name))).collect();
        let width = spelled.iter().map(String::len).max().unwrap_or(0).max("--help".len());
        for (flag, spelled) in self.flags.iter().zip(&spelled) {
            let default = flag.default.map(|d| format!(" (default: {d})")).unwrap_or_default();
            text += &format!("  {spelled:width$}  {}{default}\n", flag.help);
        }
        text += &format!("  {:width$}  print this help\n", "--help");
        text
    }

    /// The process's arguments; `None` when `--help` was given (the help is printed).
    pub fn parse(self) -> Result<Option<Args>, String> {
        self.parse_from(crate::runtime::get_arguments())
    }

    /// `arguments` as flags; `None` when `--help` was among them (the help is printed).
    pub fn parse_from(self, arguments: Vec<String>) -> Result<Option<Args>, String> {
        let mut args = Args { values: HashMap::new(), switches: Vec::new() };
        let mut given = arguments.into_iter();
        while let Some(word) = given.next() {
            if word == "--help" || word == "-h" {
                print!("{}", self.help());
                return Ok(None);
            }
            let flag = self.flags.iter().find(|f| f.name == word).ok_or_else(|| format!("unknown argument `{word}` (--help lists the flags)"))?;
            match flag.value {
                Some(value) => {
                    let given = given.next().ok_or_else(|| format!("{} needs a value: {} {value}", flag.name, flag.name))?;
                    args.values.insert(flag.name, given);
                }
                None => args.switches.push(flag.name),
            }
        }
        for flag in &self.flags {
            if let Some(default) = flag.default {
                args.values.entry(flag.name).or_insert_with(|| default.to_string());
            }
        }
        Ok(Some(args))
    }
}

impl Args {
    /// The value of `name`, its default if it has one, else `None`.
    pub fn optional<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.values.get(name).map(|v| v.parse().map_err(|_| format!("{name}: `{v}` is not a valid value"))).transpose()
    }

    /// The value of `name` (or its default); an error names the flag when it is missing.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<T, String> {
        self.optional(name)?.ok_or_else(|| format!("{name} is required (--help lists the flags)"))
    }

    /// Whether the switch `name` was given.
    pub fn on(&self, name: &str) -> bool {
        self.switches.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags::new("greeter", "Greets someone.")
            .value("--name", "TEXT", "who to greet")
            .value_or("--times", "N", "1", "how many times")
            .switch("--shout", "in capitals")
    }

    fn words(text: &str) -> Vec<String> {
        text.split(' ').filter(|w| !w.is_empty()).map(String::from).collect()
    }

    #[test]
    fn values_defaults_and_switches() {
        let args = flags().parse_from(words("--name Ada --shout")).unwrap().unwrap();
        assert_eq!(args.get::<String>("--name").unwrap(), "Ada");
        assert_eq!(args.get::<usize>("--times").unwrap(), 1);
        assert!(args.on("--shout"));
        let args = flags().parse_from(words("--times 3")).unwrap().unwrap();
        assert_eq!(args.get::<usize>("--times").unwrap(), 3);
        assert!(!args.on("--shout"));
        assert_eq!(args.get::<String>("--name").unwrap_err(), "--name is required (--help lists the flags)");
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(flags().parse_from(words("--nmae Ada")).unwrap_err(), "unknown argument `--nmae` (--help lists the flags)");
        assert_eq!(flags().parse_from(words("--name")).unwrap_err(), "--name needs a value: --name TEXT");
        let args = flags().parse_from(words("--times many")).unwrap().unwrap();
        assert_eq!(args.get::<usize>("--times").unwrap_err(), "--times: `many` is not a valid value");
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        assert!(flags().parse_from(words("--name Ada --help")).unwrap().is_none());
        let help = flags().help();
        assert!(help.starts_with("greeter: Greets someone.\n"), "{help}");
        assert!(help.contains("  --times N    how many times (default: 1)\n"), "{help}");
        assert!(help.contains("  --shout      in capitals\n"), "{help}");
        assert!(help.contains("  --help       print this help\n"), "{help}");
    }
}
