//! Enums that the API, the settings and the database spell by name.

/// Gives an enum its names: `as_str`, `Display`, a strict `FromStr` (an unknown name is a
/// [`crate::CoreError::Invalid`] on `field` that lists the names accepted) and `TryFrom<String>`
/// (how the database decodes it), all from one table.
///
/// `named!(Role, field "role", "role" { Client => "client", Lawyer => "lawyer" });`
macro_rules! named {
    ($name:ident, field $field:literal, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The name the API, the settings and the database use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::CoreError;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::CoreError::invalid(
                        $field,
                        format!(
                            concat!("unknown ", $what, " {:?}; expected {}"),
                            name,
                            $crate::names::one_of(&[$($text),+]),
                        ),
                    )),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::CoreError;

            fn try_from(name: String) -> Result<Self, Self::Error> {
                name.parse()
            }
        }
    };
}

/// `a`, `a or b`, `a, b or c`.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::one_of;

    #[test]
    fn the_names_accepted_read_as_a_list() {
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }
}
