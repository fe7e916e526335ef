//! Short cycles of a quasi-cyclic graph, avoided while its shifts are drawn.
//!
//! A closed walk `r₁ → c₁ → r₂ → c₂ → … → r₁` through circulants of the base matrix lifts to cycles
//! of length `2·k` exactly when the alternating sum `s(r₁,c₁) − s(r₂,c₁) + s(r₂,c₂) − …` is 0 mod
//! `z`. For rows `r`, `r'` let `D(r, r')` be the differences `s(r,c) − s(r',c)` over the columns
//! already placed in both. A new circulant at (row `r`, column `c`), with the column's circulant
//! (`r₂`, `s₂`) already drawn, closes
//! - a 4-cycle when `s ≡ s₂ + δ`, `δ ∈ D(r, r₂)`;
//! - a 6-cycle through a column `c₂` of row `r₂` (shift `a`) and a row `r₃` of `c₂` (shift `b`)
//!   when `s ≡ s₂ − a + b + δ`, `δ ∈ D(r, r₃)`.
//!
//! So each draw marks the shifts that close a 4-cycle and counts the 6-cycles of the others in one
//! pass, then picks among the 4-cycle-free shifts closing the fewest 6-cycles (a PEG-like greedy
//! choice: high-degree columns cannot avoid every 6-cycle at these lifts).

/// The placed circulants and the row-pair differences, updated column by column.
pub struct Cycles {
    z: usize,
    rows: usize,
    /// `diff[r·rows + r']`: `s(r,c) − s(r',c) mod z` over the shared placed columns.
    diff: Vec<Vec<u32>>,
    /// Per row, its placed (column, shift).
    in_row: Vec<Vec<(usize, u32)>>,
    /// Per column, its placed (row, shift).
    in_col: Vec<Vec<(usize, u32)>>,
}

impl Cycles {
    pub fn new(rows: usize, cols: usize, z: usize) -> Self {
        Cycles {
            z,
            rows,
            diff: vec![Vec::new(); rows * rows],
            in_row: vec![Vec::new(); rows],
            in_col: vec![Vec::new(); cols],
        }
    }

    /// Records column `c`'s circulants (row, shift).
    pub fn add_column(&mut self, c: usize, placed: &[(usize, u32)]) {
        let z = self.z as u32;
        for (i, &(r, s)) in placed.iter().enumerate() {
            self.in_row[r].push((c, s));
            for &(r2, s2) in &placed[i + 1..] {
                self.diff[r * self.rows + r2].push((s + z - s2) % z);
                self.diff[r2 * self.rows + r].push((s2 + z - s) % z);
            }
        }
        self.in_col[c].extend_from_slice(placed);
    }

    /// Marks in `four` (z flags, cleared here) the shifts of a circulant at row `r` that would
    /// close a 4-cycle with `placed`, its column's circulants drawn so far, and counts in `six`
    /// (z counts, cleared here) the 6-cycles each would close.
    pub fn forbidden(&self, r: usize, placed: &[(usize, u32)], four: &mut [bool], six: &mut [u32]) {
        let z = self.z as u32;
        four.fill(false);
        six.fill(0);
        for &(r2, s2) in placed {
            for &d in &self.diff[r * self.rows + r2] {
                four[((s2 + d) % z) as usize] = true;
            }
            for &(c2, a) in &self.in_row[r2] {
                for &(r3, b) in &self.in_col[c2] {
                    if r3 == r || r3 == r2 {
                        continue;
                    }
                    let base = (s2 + z - a + b) % z;
                    for &d in &self.diff[r * self.rows + r3] {
                        six[((base + d) % z) as usize] += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::code::{Block, Code, Spec};
    use super::super::syndrome::dense;

    /// Whether the lifted graph has a 6-cycle, from the dense matrix: three checks pairwise
    /// sharing a variable, not all three the same variable (the reference, cubic in m).
    fn has_6_cycle_dense(code: &Code) -> bool {
        let h = dense(code);
        let m = h.len();
        // pairs[a][b]: the variables of both checks a and b.
        let mut pairs = vec![vec![Vec::new(); m]; m];
        let mut checks_of = vec![Vec::new(); code.n()];
        for (c, row) in h.iter().enumerate() {
            for (v, _) in row.iter().enumerate().filter(|&(_, &bit)| bit == 1) {
                checks_of[v].push(c);
            }
        }
        for (v, checks) in checks_of.iter().enumerate() {
            for (i, &a) in checks.iter().enumerate() {
                for &b in &checks[i + 1..] {
                    pairs[a][b].push(v);
                    pairs[b][a].push(v);
                }
            }
        }
        for a in 0..m {
            for b in a + 1..m {
                for c in b + 1..m {
                    for &u in &pairs[a][b] {
                        for &v in &pairs[b][c] {
                            for &w in &pairs[c][a] {
                                if u != v && v != w && w != u {
                                    return true;
                                }
                            }
                        }
                    }
                }
            }
        }
        false
    }

    #[test]
    fn a_sparse_code_is_built_free_of_6_cycles() {
        for seed in 1..4 {
            let spec = Spec { name: "t", cols: 8, rows: 3, z: 32, profile: &[], seed };
            let code = Code::build(&spec).unwrap();
            assert!(!code.has_4_cycle());
            assert!(!has_6_cycle_dense(&code), "seed {seed}");
        }
    }

    #[test]
    fn the_dense_check_finds_a_planted_6_cycle() {
        // Rows 0–1 share column 0, rows 1–2 column 1, rows 2–0 column 2, all shifts 0: checks i of
        // the three row blocks close a 6-cycle through variables i of the three column blocks.
        let b = |col, shift| Block { col, shift };
        let code = Code {
            name: "t",
            z: 4,
            cols: 3,
            layers: vec![vec![b(0, 0), b(2, 0)], vec![b(0, 0), b(1, 0)], vec![b(1, 0), b(2, 0)]],
        };
        assert!(!code.has_4_cycle());
        assert!(has_6_cycle_dense(&code));
        let shifted =
            Code { layers: vec![vec![b(0, 0), b(2, 0)], vec![b(0, 0), b(1, 0)], vec![b(1, 0), b(2, 1)]], ..code };
        assert!(!has_6_cycle_dense(&shifted));
    }
}
