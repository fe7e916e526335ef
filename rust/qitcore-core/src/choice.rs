//! Enums whose values users name by strings ("big", "tssr", "sha3-256", …): one macro gives each
//! its names, its one `FromStr` (whose error names the argument and lists the choices), and, with
//! the `python` feature, its conversion to the name, so a choice is spelled once, here.

/// `named_choices!(Type, "argument", [Variant = "name", …])`.
macro_rules! named_choices {
    ($t:ty, $argument:literal, [$($variant:ident = $name:literal),+ $(,)?]) => {
        impl $t {
            /// The names users give the values, in order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name users give this value.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::Error;

            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    other => Err($crate::Error::choice($argument, Self::NAMES, other)),
                }
            }
        }

        $crate::choice::as_python_names!($t);
    };
}

/// With the `python` feature, Python sees values of these enums as their `name()` (a choice, a
/// device state, a test's verdict); without it, nothing.
macro_rules! as_python_names {
    ($($t:ty),* $(,)?) => {$(
        #[cfg(feature = "python")]
        impl<'py> pyo3::IntoPyObject<'py> for $t {
            type Target = pyo3::types::PyString;
            type Output = pyo3::Bound<'py, pyo3::types::PyString>;
            type Error = std::convert::Infallible;

            // (`DeviceState` has a variant named `Error`: `Self::Error` would be ambiguous.)
            fn into_pyobject(self, py: pyo3::Python<'py>) -> std::result::Result<Self::Output, std::convert::Infallible> {
                Ok(pyo3::types::PyString::new(py, self.name()))
            }
        }
    )*};
}

pub(crate) use as_python_names;
pub(crate) use named_choices;

#[cfg(test)]
mod tests {
    use crate::bits::BitOrder;
    use crate::Error;

    #[test]
    fn a_choice_parses_its_names_and_refuses_others_naming_the_argument() {
        for &name in BitOrder::NAMES {
            assert_eq!(name.parse::<BitOrder>().map(BitOrder::name), Ok(name));
        }
        let err = "middle".parse::<BitOrder>().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "bitorder", .. }));
        assert_eq!(err.to_string(), r#"bitorder: expected one of "big", "little", got "middle""#);
        let long = "x".repeat(1 << 20);
        let err = long.parse::<BitOrder>().unwrap_err().to_string();
        assert!(err.ends_with(&format!("got \"{}\"...", "x".repeat(40))), "{}", &err[..80]);
    }
}
