//! The result of one estimator: its min-entropy and every intermediate value, named as NIST's
//! `ea_non_iid -vv` prints them, so that results can be compared line by line.

/// An intermediate value.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize), serde(untagged))]
pub enum Value {
    /// A count or length.
    Int(i64),
    /// A probability, mean or other real.
    Real(f64),
}

/// Which view of the data an estimate was computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub enum View {
    /// The samples themselves (symbols mapped down to `0..k`).
    Literal,
    /// The samples' bits, most significant first.
    Bitstring,
}

impl View {
    /// `"Literal"` or `"Bitstring"`, as NIST prints it.
    pub fn label(self) -> &'static str {
        match self {
            View::Literal => "Literal",
            View::Bitstring => "Bitstring",
        }
    }

    /// `"literal"` or `"bitstring"`, as results name the view.
    pub fn name(self) -> &'static str {
        match self {
            View::Literal => "literal",
            View::Bitstring => "bitstring",
        }
    }
}

/// An estimator's intermediate values, in NIST's order and naming (a dict in Python).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(pub Vec<(&'static str, Value)>);

/// One estimator's result.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.entropy"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Estimate {
    /// The estimator, as NIST names it ("Most Common Value", "Lag Prediction", …).
    #[cfg_attr(feature = "python", serde(deserialize_with = "crate::python::static_name"))]
    pub name: crate::Name,
    /// The view of the data.
    pub view: View,
    /// Min-entropy per sample of the view (bits), or `None` when the estimator could not run.
    pub min_entropy: Option<f64>,
    /// Intermediate values, in NIST's order and naming.
    pub fields: Fields,
    /// Why the estimator did not run, or how it fell back.
    pub note: Option<String>,
}

impl Estimate {
    pub(crate) fn new(name: &'static str, view: View) -> Self {
        Estimate { name, view, min_entropy: None, fields: Fields::default(), note: None }
    }

    pub(crate) fn int(&mut self, key: &'static str, v: i64) -> &mut Self {
        self.fields.0.push((key, Value::Int(v)));
        self
    }

    pub(crate) fn real(&mut self, key: &'static str, v: f64) -> &mut Self {
        self.fields.0.push((key, Value::Real(v)));
        self
    }

    pub(crate) fn finish(mut self, h: f64) -> Self {
        self.min_entropy = Some(h);
        self
    }

    pub(crate) fn skipped(mut self, why: impl Into<String>) -> Self {
        self.note = Some(why.into());
        self
    }

    /// What an estimator returns when it gave up at a [`Stop`](super::Stop): never reported,
    /// since the track then says it stopped.
    pub(crate) fn stopped(self) -> Self {
        self.skipped("stopped")
    }

    /// The value of an intermediate field.
    pub fn field(&self, key: &str) -> Option<Value> {
        self.fields.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}
