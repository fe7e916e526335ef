//! The result of one estimator: its min-entropy and every intermediate value, named as NIST's
//! `ea_non_iid -vv` prints them, so that results can be compared line by line.

/// An intermediate value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A count or length.
    Int(i64),
    /// A probability, mean or other real.
    Real(f64),
}

/// Which view of the data an estimate was computed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

/// One estimator's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// The estimator, as NIST names it ("Most Common Value", "Lag Prediction", …).
    pub name: &'static str,
    /// The view of the data.
    pub view: View,
    /// Min-entropy per sample of the view (bits), or `None` when the estimator could not run.
    pub min_entropy: Option<f64>,
    /// Intermediate values, in NIST's order and naming.
    pub fields: Vec<(&'static str, Value)>,
    /// Why the estimator did not run, or how it fell back.
    pub note: Option<String>,
}

impl Estimate {
    pub(crate) fn new(name: &'static str, view: View) -> Self {
        Estimate { name, view, min_entropy: None, fields: Vec::new(), note: None }
    }

    pub(crate) fn int(&mut self, key: &'static str, v: i64) -> &mut Self {
        self.fields.push((key, Value::Int(v)));
        self
    }

    pub(crate) fn real(&mut self, key: &'static str, v: f64) -> &mut Self {
        self.fields.push((key, Value::Real(v)));
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

    /// The value of an intermediate field.
    pub fn field(&self, key: &str) -> Option<Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}
