//! A bank's own table: a CSV file read with the `csv` crate, its text columns one-hot
//! encoded and its missing values imputed, fitted on the training split only, as a
//! scikit-learn `ColumnTransformer` of `SimpleImputer(add_indicator=True)` and
//! `OneHotEncoder(handle_unknown="infrequent_if_exist")` fitted on `X_train` would be; then
//! split 80/10/10 stratified by label (or by a split column of the file's own).
//!
//! ```text
//! let options = TableOptions { positive: Some("yes".into()), ..TableOptions::new("default") };
//! let table = read_table(path, &options)?;
//! println!("{}", table.summary());
//! let [train, validation, test] = table.splits; // encoded, not yet standardized
//! ```
//!
//! The choices, against what a pandas, scikit-learn or PyTorch user expects:
//!
//! - **Parsing** (`pd.read_csv`): quoted fields (a delimiter or a line end inside quotes, `""`
//!   for a quote) and quoted header names; `\r\n` or `\n` line ends; a UTF-8 byte-order mark
//!   (csv-core skips one only when its first buffer holds all three bytes: it is stripped here
//!   first, before the delimiter is sniffed); blank lines skipped (pandas'
//!   `skip_blank_lines=True`), lines of spaces too; every field and header name trimmed
//!   (pandas keeps the spaces: `skipinitialspace=False`; an Excel export padded with spaces is
//!   the commoner case). The delimiter is `options.delimiter`, or the most frequent of `,` `;`
//!   tab `|` outside quotes on the header line (ties in that order; none: `,`), as
//!   `csv.Sniffer` guesses. In a file delimited by `;` a decimal comma is read (`1,5` is
//!   1.5: Excel's export in German or French locales; pandas needs `decimal=","`); not in a
//!   tab- or `|`-delimited one, where `1,234` may be a thousands separator. An empty header
//!   name is `Unnamed: i` (0-based), as pandas names an exported index; a name given twice
//!   is refused (pandas would rename it `a.1`). Text not UTF-8 is refused naming the line and
//!   the column (save as "CSV UTF-8").
//! - **Refused**, each naming the line (the header is line 1 of a file without leading blank
//!   lines: lines are counted as an editor shows them), the column and the value where there
//!   is one, and the fix: an empty file, a header without records, a record with another
//!   number of fields than the header (pandas' "Error tokenizing data"), a label or split
//!   column not in the header (the first 12 names listed; a header of numbers only is said
//!   to be a missing header row; a single-field header in a file holding `;`, tab or `|`
//!   points at `--delimiter`), a header with no attribute column, fewer than 100 records
//!   (as before: splits of a few records give metrics of no meaning).
//! - **Missing values**: pandas' default `na_values` (`""`, `NA`, `N/A`, `NaN`, `nan`,
//!   `NULL`, `None`, `#N/A`, `<NA>`, ...; case as listed) and `?` (the UCI repository's
//!   mark), and any other spelling of NaN that Rust's float parser reads (`NAN`).
//! - **Column types**, decided over the whole file as pandas infers a dtype: a column whose
//!   every non-missing cell is a number is numeric; each must be finite in f32, the device's
//!   type (`inf`, `-Infinity` and `1e39`, finite in f64 only, are refused naming the line and
//!   the column; a magnitude below f32's smallest becomes 0 or a subnormal). A column with a
//!   text cell is categorical (its levels are the cells as written: `1` and `1.0` differ, as
//!   in an `object` column), unless more than half of its non-missing cells are numbers:
//!   then the text is taken for a typo in a numeric column (pandas would silently make the
//!   whole column `object`) and refused naming its line, column and value.
//! - **Fitted on the training split only** (no statistics leak from validation or test):
//!   a numeric column's missing cells take the training split's median (`SimpleImputer(
//!   strategy="median")`; the mean of the middle two for an even count), and a 0/1 column
//!   `NAME (missing)` follows it when the training split has missing cells there (scikit-
//!   learn's `MissingIndicator(features="missing-only")`: a column missing only in
//!   validation or test is imputed without one). A categorical column becomes a one-hot
//!   column `NAME=LEVEL` for each of its `max_categories` most frequent levels in the
//!   training split (ties: the first seen; columns in that order, most frequent first; all
//!   of them, not `drop="first"`: pandas' `get_dummies` default), and `NAME=other` for the
//!   rest when the training split has more levels than that (scikit-learn counts the
//!   infrequent column within its `max_categories`; here it comes on top); a level unseen
//!   in training goes to `other`, or to no column (all zeros, `handle_unknown="ignore"`)
//!   where there is none (the report counts them). Its missing cells take the most frequent
//!   level, with an indicator
//!   column as above. A column constant in the training split (pandas' `nunique() == 1`, no
//!   missing cell) or all missing there is dropped, with a note in the report; one constant
//!   where present and missing elsewhere keeps its indicator column alone. A table left
//!   without an attribute column is refused.
//! - **Not standardized here**: the caller standardizes every encoded column with the
//!   training split's moments (`Dataset::moments`), one-hot and indicator columns included,
//!   as a `StandardScaler` after the encoders would.
//! - **The label**: 0 and 1 as numbers (`0`, `1`, `0.0`, `1.0`, ...; 1 is a default, or 0
//!   with `positive: Some("0")`). Any other labels are text (`yes`/`no`, German credit's
//!   `1`/`2`): `positive` names the value that marks a default, spelled exactly; every other
//!   value is not a default. Refused: text labels without `positive` (the values listed with
//!   their counts), a `positive` not among them, a third distinct value, a missing label.
//! - **The split**, as `train_test_split(stratify=y)` twice: each label's records shuffled
//!   with the seed (`data::stratified_rows`, which `Dataset::split_stratified` used: a seed
//!   gives a 0/1 table the split it gave before), a tenth (at least one) to validation, as
//!   many to test, the rest to training, each split in file order; a label with fewer than 3
//!   records is refused. Or, with `split_column`, by that column's values, in any case:
//!   `train`/`training`, `validation`/`valid`/`val`/`dev`, `test`/`testing` (any other
//!   refused naming its line); the split column is not an attribute, and a split it leaves
//!   without a default or without a non-default is refused (ROC AUC and precision are
//!   undefined on one label; a stratified split always holds both).
//! - **Deterministic**: no hash-map order reaches the output; the same file and options give
//!   the same datasets, bit for bit.

use super::data::{stratified_rows, DataError, Dataset};
use std::collections::HashMap;

/// pandas' default `na_values` (`pd.read_csv`), then `?`, the UCI repository's mark.
pub const MISSING: [&str; 20] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "?",
];

/// The delimiters sniffed from the header line, ties broken in this order.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Fewer records than this are refused: splits of a few records give metrics of no meaning.
pub const MIN_RECORDS: usize = 100;

/// Header names listed in a message before "... and N more".
const SHOWN: usize = 12;

/// The splits' names, in [`Table::splits`]' order.
pub const SPLITS: [&str; 3] = ["training", "validation", "test"];

/// How to read a table: the command line's `--label`, `--positive`, `--delimiter`,
/// `--split-column`, `--max-categories` and `--seed`.
#[derive(Clone, Debug)]
pub struct TableOptions {
    /// The label's column (`--label COLUMN`).
    pub label: String,
    /// The label value that marks a default, for text labels (`--positive VALUE`); `"0"` or
    /// `"1"` for a 0/1 column.
    pub positive: Option<String>,
    /// The delimiter (`--delimiter`); `None`: sniffed from the header line among `,` `;` tab
    /// `|`.
    pub delimiter: Option<u8>,
    /// A column whose values (train / validation / test) split the records, instead of a
    /// stratified shuffle (`--split-column NAME`).
    pub split_column: Option<String>,
    /// One-hot columns per text column (`--max-categories`, default 20); rarer levels share
    /// `NAME=other`.
    pub max_categories: usize,
    /// Shuffles the stratified split (`--seed`).
    pub seed: u64,
}

impl TableOptions {
    /// The defaults for a label column: 0/1 labels, a sniffed delimiter, a stratified split
    /// with seed 7 (the example's default), 20 one-hot columns per text column.
    pub fn new(label: impl Into<String>) -> TableOptions {
        TableOptions {
            label: label.into(),
            positive: None,
            delimiter: None,
            split_column: None,
            max_categories: 20,
            seed: 7,
        }
    }
}

/// A table read, split and encoded (not standardized).
#[derive(Debug)]
pub struct Table {
    /// Training, validation and test, encoded: numeric columns as read (missing cells
    /// imputed), one-hot and indicator columns 0 or 1; the names say which is which.
    pub splits: [Dataset; 3],
    /// What was done to each column of the file, in file order.
    pub columns: Vec<ColumnReport>,
    pub delimiter: u8,
    /// The label value taken as a default: `"1"` (or `"0"`) for 0/1 labels, else the text.
    pub positive: String,
    /// Records read (blank lines not counted).
    pub records: usize,
    /// How the records were split: "stratified by label, shuffled with seed 7" or
    /// `column "fold"`.
    pub split_by: String,
}

/// One column of the file: its kind and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnReport {
    pub name: String,
    pub kind: Kind,
    /// Missing cells in the training split.
    pub missing: usize,
    /// Missing cells in the validation and test splits (imputed with the training split's
    /// value, no indicator unless the training split has one).
    pub missing_held_out: usize,
    pub treatment: Treatment,
    /// The encoded attribute columns it became, in order; empty when dropped, for the label
    /// and for the split column.
    pub encoded: Vec<String>,
}

/// A column's kind, decided over the whole file.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Numeric,
    /// Text: `levels` distinct values in the training split.
    Categorical {
        levels: usize,
    },
    Label,
    Split,
}

/// What became of a column, fitted on the training split.
#[derive(Clone, Debug, PartialEq)]
pub enum Treatment {
    /// The label: `positive` (as shown in messages: `1`, or `"yes"`) marks a default.
    Label {
        positive: String,
        positives: usize,
        negatives: usize,
    },
    /// The split column: records per split.
    Split {
        records: [usize; 3],
    },
    /// One numeric column (standardized by the caller); a missing cell is the training
    /// split's `median`, flagged by an indicator column where `indicator`.
    Numeric {
        median: f32,
        indicator: bool,
    },
    /// One-hot columns for `levels` (most frequent first), then `NAME=other` where `other`;
    /// a missing cell is `mode` (the most frequent level), flagged where `indicator`;
    /// `unseen` cells of validation and test hold levels the training split lacks.
    OneHot {
        levels: Vec<String>,
        other: bool,
        mode: String,
        indicator: bool,
        unseen: usize,
    },
    /// One value where present (`value`), missing elsewhere: the indicator column alone.
    IndicatorOnly {
        value: String,
    },
    Dropped(Dropped),
}

/// Why a column was dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum Dropped {
    /// The training split's only value, as shown (`4.5`, `"rent"`).
    Constant(String),
    AllMissing,
}

/// Reads, checks, splits and encodes the table at `path` (see the module's documentation).
pub fn read_table(path: &std::path::Path, options: &TableOptions) -> Result<Table, DataError> {
    if options.max_categories == 0 {
        return Err(DataError::NoCategories);
    }
    let bytes = std::fs::read(path)?;
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes[..]);
    let delimiter = options
        .delimiter
        .unwrap_or_else(|| sniff(header_line(text)));
    let raw = parse(text, delimiter)?;
    let header = Header::find(&raw, options, text, delimiter)?;
    if raw.records.is_empty() {
        return Err(DataError::NoRecords);
    }
    // Where `;` delimits, `,` is the decimal separator (Excel in German or French locales).
    let decimal_comma = delimiter == b';';
    let roles = check_cells(&raw, &header, decimal_comma)?;
    let classes = Classes::find(
        &raw,
        header.label,
        options.positive.as_deref(),
        decimal_comma,
    )?;
    if raw.records.len() < MIN_RECORDS {
        return Err(DataError::TooFewRecords {
            records: raw.records.len(),
            minimum: MIN_RECORDS,
        });
    }
    let (rows, split_by) = split_rows(&raw, &header, &classes, options.seed)?;
    let (splits, columns) = encode(
        &raw,
        &roles,
        &classes,
        &rows,
        options.max_categories,
        decimal_comma,
    )?;
    Ok(Table {
        splits,
        columns,
        delimiter,
        positive: classes.positive,
        records: raw.records.len(),
        split_by,
    })
}

/// The rows of the training, validation and test splits, and how they were split: stratified
/// by label with `seed`, or by the split column. Refuses a label with fewer than 3 records
/// (stratified), and a split column that leaves a split without a default or without a
/// non-default.
fn split_rows(
    raw: &Raw,
    header: &Header,
    classes: &Classes,
    seed: u64,
) -> Result<([Vec<usize>; 3], String), DataError> {
    let Some(column) = header.split else {
        for (count, label) in [
            (classes.negatives(), &classes.negative),
            (classes.positives(), &classes.positive_shown),
        ] {
            if count < 3 {
                return Err(DataError::TooFewOfClass {
                    label: label.clone(),
                    count,
                });
            }
        }
        // With 3 records of each label or more, every split holds both.
        let by = format!("stratified by label, shuffled with seed {seed}");
        return Ok((stratified_rows(&classes.labels, seed), by));
    };
    let mut rows: [Vec<usize>; 3] = Default::default();
    for (r, record) in raw.records.iter().enumerate() {
        // Checked by `check_cells`.
        rows[split_of(&record[column]).unwrap_or(0)].push(r);
    }
    for (split, rows) in SPLITS.into_iter().zip(&rows) {
        let positives = rows.iter().filter(|&&r| classes.labels[r] > 0.5).count();
        if positives == 0 || positives == rows.len() {
            return Err(DataError::SplitLacksLabel {
                split,
                column: raw.names[column].clone(),
                positives,
                negatives: rows.len() - positives,
            });
        }
    }
    Ok((rows, format!("column {:?}", raw.names[column])))
}

/// Fits each attribute column's encoder on the training split (`rows[0]`), then encodes
/// every split; refuses a table left without an attribute column.
fn encode(
    raw: &Raw,
    roles: &[Role],
    classes: &Classes,
    rows: &[Vec<usize>; 3],
    max_categories: usize,
    decimal_comma: bool,
) -> Result<([Dataset; 3], Vec<ColumnReport>), DataError> {
    let mut encoders = Vec::new();
    let mut columns = Vec::new();
    for (j, name) in raw.names.iter().enumerate() {
        let missing = |rows: &[usize]| {
            rows.iter()
                .filter(|&&r| matches!(cell(&raw.records[r][j], decimal_comma), Cell::Missing))
                .count()
        };
        let (kind, treatment, encoder) = match roles[j] {
            Role::Label => {
                let positives = classes.positives();
                let treatment = Treatment::Label {
                    positive: classes.positive_shown.clone(),
                    positives,
                    negatives: classes.labels.len() - positives,
                };
                (Kind::Label, treatment, None)
            }
            Role::Split => (
                Kind::Split,
                Treatment::Split {
                    records: rows.each_ref().map(Vec::len),
                },
                None,
            ),
            Role::Numeric => {
                let (treatment, encoder) = fit_numeric(raw, j, &rows[0], decimal_comma);
                (Kind::Numeric, treatment, encoder)
            }
            Role::Categorical => {
                let (levels, treatment, encoder) =
                    fit_categorical(raw, j, &rows[0], max_categories);
                (Kind::Categorical { levels }, treatment, encoder)
            }
            Role::Mixed => unreachable!("refused by check_cells"),
        };
        let encoded = encoder
            .as_ref()
            .map_or_else(Vec::new, |e: &Encoder| e.names(name));
        if let Some(encoder) = encoder {
            encoders.push((j, columns.len(), encoder));
        }
        columns.push(ColumnReport {
            name: name.clone(),
            kind,
            missing: missing(&rows[0]),
            missing_held_out: missing(&rows[1]) + missing(&rows[2]),
            treatment,
            encoded,
        });
    }
    let names: Vec<String> = columns.iter().flat_map(|c| c.encoded.clone()).collect();
    if names.is_empty() {
        let dropped = columns
            .iter()
            .filter_map(|c| match &c.treatment {
                Treatment::Dropped(Dropped::Constant(v)) => {
                    Some(format!("{:?}: constant {v}", c.name))
                }
                Treatment::Dropped(Dropped::AllMissing) => {
                    Some(format!("{:?}: all missing", c.name))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(DataError::NothingLeft { dropped });
    }
    let splits = [0, 1, 2].map(|s| {
        let mut records = Vec::with_capacity(rows[s].len() * names.len());
        for &r in &rows[s] {
            for (j, report, encoder) in &encoders {
                let seen = encoder.encode(&raw.records[r][*j], decimal_comma, &mut records);
                if !seen {
                    if let Treatment::OneHot { unseen, .. } = &mut columns[*report].treatment {
                        *unseen += 1;
                    }
                }
            }
        }
        Dataset {
            records,
            labels: rows[s].iter().map(|&r| classes.labels[r]).collect(),
            features: names.len(),
            names: names.clone(),
        }
    });
    Ok((splits, columns))
}

impl Table {
    /// A readable table: a line on the file and its split, then one line per column of the
    /// file: its name, its kind, its missing cells in the training split, and what was done.
    pub fn summary(&self) -> String {
        let [train, validation, test] = &self.splits;
        let mut text = format!(
            "{} records, delimiter {:?}, split {}: training {} / validation {} / test {}; {} \
             encoded attributes\n",
            self.records,
            char::from(self.delimiter),
            self.split_by,
            train.len(),
            validation.len(),
            test.len(),
            train.features,
        );
        let mut rows = vec![[
            "column".to_string(),
            "kind".to_string(),
            "missing (training)".to_string(),
            "treatment".to_string(),
        ]];
        for c in &self.columns {
            rows.push([
                c.name.clone(),
                c.kind.to_string(),
                c.missing.to_string(),
                c.treatment_text(),
            ]);
        }
        let width = |k: usize| rows.iter().map(|r| r[k].chars().count()).max().unwrap_or(0);
        let widths = [width(0), width(1), width(2)];
        for row in &rows {
            text += &format!(
                "  {:<w0$}  {:<w1$}  {:>w2$}  {}\n",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            );
        }
        text
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Numeric => write!(f, "numeric"),
            Kind::Categorical { levels: 1 } => write!(f, "categorical, 1 level"),
            Kind::Categorical { levels } => write!(f, "categorical, {levels} levels"),
            Kind::Label => write!(f, "label"),
            Kind::Split => write!(f, "split"),
        }
    }
}

impl ColumnReport {
    /// What was done, in words: "standardized; imputed with median 42.5 + indicator column".
    pub fn treatment_text(&self) -> String {
        let held_out = self.missing_held_out;
        match &self.treatment {
            Treatment::Label {
                positive,
                positives,
                negatives,
            } => format!("{positive} is a default: {positives} defaults, {negatives} others"),
            Treatment::Split { records: [a, b, c] } => {
                format!("not an attribute: training {a} / validation {b} / test {c}")
            }
            Treatment::Numeric { median, indicator } => {
                let mut text = "standardized".to_string();
                if *indicator {
                    text += &format!("; imputed with median {median} + indicator column");
                } else if held_out > 0 {
                    text += &format!(
                        "; {held_out} missing in validation/test imputed with median {median}"
                    );
                }
                text
            }
            Treatment::OneHot {
                levels,
                other,
                mode,
                indicator,
                unseen,
            } => {
                let mut text = format!("one-hot {}", levels.len());
                if *other {
                    text += " + other";
                }
                if *indicator {
                    text += &format!("; imputed with {mode:?} (most frequent) + indicator column");
                } else if held_out > 0 {
                    text +=
                        &format!("; {held_out} missing in validation/test imputed with {mode:?}");
                }
                if *unseen > 0 {
                    let to = if *other { "other" } else { "no column" };
                    text += &format!(
                        "; {unseen} validation/test cells of levels unseen in training: {to}"
                    );
                }
                text
            }
            Treatment::IndicatorOnly { value } => {
                format!("indicator column only (one value where present: {value})")
            }
            Treatment::Dropped(Dropped::Constant(value)) => format!("dropped: constant {value}"),
            Treatment::Dropped(Dropped::AllMissing) => "dropped: all missing".to_string(),
        }
    }
}

/// The file's records as text, trimmed, with their lines.
struct Raw {
    header_line: usize,
    names: Vec<String>,
    lines: Vec<usize>,
    records: Vec<csv::StringRecord>,
}

/// The first line holding more than white space.
fn header_line(text: &[u8]) -> &[u8] {
    text.split(|&b| b == b'\n')
        .find(|line| !line.trim_ascii().is_empty())
        .unwrap_or_default()
}

/// The most frequent of [`DELIMITERS`] outside quotes on `line` (ties: the first listed);
/// `,` when none is there (a single column).
fn sniff(line: &[u8]) -> u8 {
    let mut counts = [0_usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if let Some(k) = DELIMITERS.iter().position(|&d| d == b).filter(|_| !quoted) {
            counts[k] += 1;
        }
    }
    let best = (0..DELIMITERS.len())
        .max_by_key(|&k| (counts[k], std::cmp::Reverse(k)))
        .unwrap_or(0);
    if counts[best] > 0 {
        DELIMITERS[best]
    } else {
        b','
    }
}

/// Splits `text` into records (the csv crate: quoting, line ends), skipping blank lines,
/// refusing text not UTF-8 and records whose field count differs from the header's.
fn parse(text: &[u8], delimiter: u8) -> Result<Raw, DataError> {
    let newlines: Vec<usize> = (0..text.len()).filter(|&i| text[i] == b'\n').collect();
    // A record's position is where the reader resumed: it may be the previous line's end.
    let line_at = |position: Option<&csv::Position>| {
        let mut at = position.map_or(0, |p| p.byte() as usize);
        while at < text.len() && matches!(text[at], b'\r' | b'\n') {
            at += 1;
        }
        newlines.partition_point(|&n| n < at) + 1
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(text);
    let mut raw: Option<Raw> = None;
    let mut record = csv::ByteRecord::new();
    while reader
        .read_byte_record(&mut record)
        .map_err(std::io::Error::from)?
    {
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        let line = line_at(record.position());
        let fields = csv::StringRecord::from_byte_record(record.clone()).map_err(|e| {
            let field = e.utf8_error().field();
            DataError::NotUtf8 {
                line,
                column: raw
                    .as_ref()
                    .and_then(|raw| raw.names.get(field).cloned())
                    .unwrap_or_else(|| format!("field {}", field + 1)),
            }
        })?;
        match &mut raw {
            None => {
                let names = fields
                    .iter()
                    .enumerate()
                    .map(|(i, name)| match name {
                        "" => format!("Unnamed: {i}"),
                        name => name.to_string(),
                    })
                    .collect();
                raw = Some(Raw {
                    header_line: line,
                    names,
                    lines: Vec::new(),
                    records: Vec::new(),
                });
            }
            Some(raw) => {
                if fields.len() != raw.names.len() {
                    return Err(DataError::FieldCount {
                        line,
                        fields: fields.len(),
                        expected: raw.names.len(),
                        delimiter: char::from(delimiter),
                    });
                }
                raw.lines.push(line);
                raw.records.push(fields);
            }
        }
    }
    raw.ok_or(DataError::Empty)
}

/// The label's and the split's columns.
struct Header {
    label: usize,
    split: Option<usize>,
}

impl Header {
    /// Refuses a name given twice, a label or split column missing, no attribute column.
    fn find(
        raw: &Raw,
        options: &TableOptions,
        text: &[u8],
        delimiter: u8,
    ) -> Result<Header, DataError> {
        let line = raw.header_line;
        for (second, name) in raw.names.iter().enumerate() {
            if let Some(first) = raw.names[..second].iter().position(|n| n == name) {
                return Err(DataError::DuplicateName {
                    line,
                    name: name.clone(),
                    first: first + 1,
                    second: second + 1,
                });
            }
        }
        let position = |name: &str, option: &'static str| {
            raw.names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| DataError::MissingColumn {
                    line,
                    name: name.to_string(),
                    option,
                    columns: listed(&raw.names),
                    fix: header_fix(raw, text, delimiter).unwrap_or_else(|| {
                        format!("name one of these columns with {option}, spelled exactly")
                    }),
                })
        };
        let label = position(&options.label, "--label")?;
        let split = match &options.split_column {
            Some(name) if *name == options.label => {
                return Err(DataError::SplitIsLabel { name: name.clone() })
            }
            Some(name) => Some(position(name, "--split-column")?),
            None => None,
        };
        if raw.names.len() == 1 + usize::from(split.is_some()) {
            return Err(DataError::NoAttributeColumns {
                line,
                columns: listed(&raw.names),
                fix: header_fix(raw, text, delimiter).unwrap_or_else(|| {
                    "add the attributes the model should learn from".to_string()
                }),
            });
        }
        Ok(Header { label, split })
    }
}

/// `names` quoted, the first [`SHOWN`] of them, then how many more.
fn listed(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text += &format!(" … and {} more", names.len() - SHOWN);
    }
    text
}

/// Why the header may not be what was meant: a single field where the file holds another
/// delimiter, or numbers only (no header row).
fn header_fix(raw: &Raw, text: &[u8], delimiter: u8) -> Option<String> {
    if raw.names.len() == 1 {
        let count = |d: u8| text.iter().filter(|&&b| b == d).count();
        let other = DELIMITERS
            .into_iter()
            .filter(|&d| d != delimiter && count(d) > 0)
            .max_by_key(|&d| count(d));
        if let Some(d) = other {
            return Some(format!(
                "the header is a single field, delimited by {:?}, and the file holds {:?}: \
                 pass --delimiter {:?}",
                char::from(delimiter),
                char::from(d),
                char::from(d),
            ));
        }
    }
    if raw.names.iter().all(|n| n.parse::<f64>().is_ok()) {
        return Some(
            "every header field is a number: the file seems to have no header row; add one \
             naming the columns"
                .to_string(),
        );
    }
    None
}

/// A cell, read as pandas would: missing, a number, or text.
enum Cell {
    Missing,
    /// `wide` as f64, `narrow` as f32 (infinite where `wide` is beyond f32).
    Number {
        wide: f64,
        narrow: f32,
    },
    Text,
}

/// A missing value: one of [`MISSING`], or another spelling of NaN (`NAN`).
fn is_missing(text: &str) -> bool {
    MISSING.contains(&text) || text.parse::<f64>().is_ok_and(f64::is_nan)
}

/// Reads a trimmed cell; `decimal_comma`: `1,5` is 1.5.
fn cell(text: &str, decimal_comma: bool) -> Cell {
    if is_missing(text) {
        return Cell::Missing;
    }
    let dotted;
    let text = if decimal_comma && !text.contains('.') && text.matches(',').count() == 1 {
        dotted = text.replacen(',', ".", 1);
        &dotted
    } else {
        text
    };
    match (text.parse::<f64>(), text.parse::<f32>()) {
        (Ok(wide), Ok(narrow)) => Cell::Number { wide, narrow },
        _ => Cell::Text,
    }
}

/// A split column's value: 0 training, 1 validation, 2 test.
fn split_of(text: &str) -> Option<usize> {
    match text.to_ascii_lowercase().as_str() {
        "train" | "training" => Some(0),
        "validation" | "valid" | "val" | "dev" => Some(1),
        "test" | "testing" => Some(2),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Label,
    Split,
    Numeric,
    /// Numbers and, in fewer than half the cells, text: refused.
    Mixed,
    Categorical,
}

/// Each column's role, and the first bad cell in file order refused: a missing label, a split
/// value not understood, and in a column of numbers a text cell, or a number not finite in
/// f32.
fn check_cells(raw: &Raw, header: &Header, decimal_comma: bool) -> Result<Vec<Role>, DataError> {
    let mut counts = vec![(0_usize, 0_usize); raw.names.len()];
    for record in &raw.records {
        for (j, field) in record.iter().enumerate() {
            match cell(field, decimal_comma) {
                Cell::Number { .. } => counts[j].0 += 1,
                Cell::Text => counts[j].1 += 1,
                Cell::Missing => {}
            }
        }
    }
    let roles: Vec<Role> = (0..raw.names.len())
        .map(|j| match counts[j] {
            _ if j == header.label => Role::Label,
            _ if Some(j) == header.split => Role::Split,
            (_, 0) => Role::Numeric,
            (numbers, texts) if numbers > texts => Role::Mixed,
            _ => Role::Categorical,
        })
        .collect();
    for (record, &line) in raw.records.iter().zip(&raw.lines) {
        for (j, field) in record.iter().enumerate() {
            let column = || raw.names[j].clone();
            let text = || field.to_string();
            match (roles[j], cell(field, decimal_comma)) {
                (Role::Label, Cell::Missing) => {
                    return Err(DataError::MissingLabel {
                        line,
                        column: column(),
                        text: text(),
                    })
                }
                (Role::Split, _) if split_of(field).is_none() => {
                    return Err(DataError::SplitValue {
                        line,
                        column: column(),
                        text: text(),
                    })
                }
                (Role::Mixed, Cell::Text) => {
                    let (numbers, texts) = counts[j];
                    return Err(DataError::MixedColumn {
                        line,
                        column: column(),
                        text: text(),
                        numbers,
                        texts,
                    });
                }
                (Role::Numeric | Role::Mixed, Cell::Number { wide, .. }) if !wide.is_finite() => {
                    return Err(DataError::NotFiniteCell {
                        line,
                        column: column(),
                        text: text(),
                    })
                }
                (Role::Numeric | Role::Mixed, Cell::Number { narrow, .. })
                    if !narrow.is_finite() =>
                {
                    return Err(DataError::BeyondF32Cell {
                        line,
                        column: column(),
                        text: text(),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(roles)
}

/// The distinct values of `key` over `rows` in first-seen order: (value, count, index of the
/// first row holding it).
fn tally<'a>(rows: impl Iterator<Item = (usize, &'a str)>) -> Vec<(&'a str, usize, usize)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut values: Vec<(&str, usize, usize)> = Vec::new();
    for (r, value) in rows {
        match index.get(value) {
            Some(&k) => values[k].1 += 1,
            None => {
                index.insert(value, values.len());
                values.push((value, 1, r));
            }
        }
    }
    values
}

/// The labels as 0/1, and how messages name each class.
struct Classes {
    labels: Vec<f32>,
    /// The label value taken as a default, as in [`Table::positive`].
    positive: String,
    /// As messages show it: `1`, or `"yes"`.
    positive_shown: String,
    /// The other class as messages show it: `0`, `"no"`, or `other than "yes"`.
    negative: String,
}

impl Classes {
    fn find(
        raw: &Raw,
        column: usize,
        positive: Option<&str>,
        decimal_comma: bool,
    ) -> Result<Classes, DataError> {
        let name = &raw.names[column];
        let positive = positive.map(str::trim);
        let binary = |text: &str| match cell(text, decimal_comma) {
            Cell::Number { wide: 1.0, .. } => Some("1"),
            Cell::Number { wide: 0.0, .. } => Some("0"),
            _ => None,
        };
        let is_binary = raw.records.iter().all(|r| binary(&r[column]).is_some());
        let values = tally(raw.records.iter().enumerate().map(|(r, record)| {
            let text = &record[column];
            (
                r,
                if is_binary {
                    binary(text).unwrap_or(text)
                } else {
                    text
                },
            )
        }));
        let listing = || {
            let mut text = values
                .iter()
                .take(SHOWN)
                .map(|&(value, count, r)| {
                    let records = if count == 1 { "record" } else { "records" };
                    format!(
                        "{value:?}: {count} {records}, first on line {}",
                        raw.lines[r]
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            if values.len() > SHOWN {
                text += &format!(" … and {} more values", values.len() - SHOWN);
            }
            text
        };
        let not_found = |positive: &str| DataError::PositiveNotFound {
            column: name.clone(),
            positive: positive.to_string(),
            values: listing(),
        };
        let (positive, positive_shown, negative) = if is_binary {
            let positive = match positive {
                None => "1",
                Some(p) => binary(p).ok_or_else(|| not_found(p))?,
            };
            let negative = if positive == "1" { "0" } else { "1" };
            (
                positive.to_string(),
                positive.to_string(),
                negative.to_string(),
            )
        } else {
            if let Some(&(text, _, r)) = values.get(2) {
                return Err(DataError::TooManyLabelValues {
                    line: raw.lines[r],
                    column: name.clone(),
                    text: text.to_string(),
                    values: listing(),
                });
            }
            let Some(positive) = positive else {
                return Err(DataError::NoPositive {
                    column: name.clone(),
                    values: listing(),
                });
            };
            if !values.iter().any(|&(v, _, _)| v == positive) {
                return Err(not_found(positive));
            }
            let negative = match values.iter().find(|&&(v, _, _)| v != positive) {
                Some((v, _, _)) => format!("{v:?}"),
                None => format!("other than {positive:?}"),
            };
            (positive.to_string(), format!("{positive:?}"), negative)
        };
        let labels = raw
            .records
            .iter()
            .map(|r| {
                let text = &r[column];
                let value = if is_binary {
                    binary(text).unwrap_or(text)
                } else {
                    text
                };
                if value == positive {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Classes {
            labels,
            positive,
            positive_shown,
            negative,
        })
    }

    fn positives(&self) -> usize {
        self.labels.iter().filter(|&&y| y > 0.5).count()
    }

    fn negatives(&self) -> usize {
        self.labels.len() - self.positives()
    }
}

/// A column's encoding, fitted on the training split.
enum Encoder {
    /// The value (the median where missing), then the indicator where `indicator`.
    Numeric { median: f32, indicator: bool },
    /// One column per kept level, `other` for the rest; `slots` maps every level seen in
    /// training to its column (`None`: a rare level, to `other`); a missing cell is `mode`'s.
    OneHot {
        levels: Vec<String>,
        slots: HashMap<String, Option<usize>>,
        other: bool,
        mode: usize,
        indicator: bool,
    },
    /// The indicator alone: 1 where missing.
    IndicatorOnly,
}

impl Encoder {
    /// The encoded columns' names, for column `name`.
    fn names(&self, name: &str) -> Vec<String> {
        let indicator = format!("{name} (missing)");
        match self {
            Encoder::Numeric { indicator: i, .. } => {
                let mut names = vec![name.to_string()];
                if *i {
                    names.push(indicator);
                }
                names
            }
            Encoder::OneHot {
                levels,
                other,
                indicator: i,
                ..
            } => {
                let mut names: Vec<String> = levels.iter().map(|l| format!("{name}={l}")).collect();
                if *other {
                    // A kept level spelled "other" keeps its name; the shared column yields.
                    let shared = if levels.iter().any(|l| l == "other") {
                        "(other)"
                    } else {
                        "other"
                    };
                    names.push(format!("{name}={shared}"));
                }
                if *i {
                    names.push(indicator);
                }
                names
            }
            Encoder::IndicatorOnly => vec![indicator],
        }
    }

    /// Appends `text`'s encoding to `out`; false for a level unseen in training.
    fn encode(&self, text: &str, decimal_comma: bool, out: &mut Vec<f32>) -> bool {
        let cell = cell(text, decimal_comma);
        let missing = matches!(cell, Cell::Missing);
        match self {
            Encoder::Numeric { median, indicator } => {
                out.push(match cell {
                    Cell::Number { narrow, .. } => narrow,
                    // Checked by `check_cells`: no text in a numeric column.
                    _ => *median,
                });
                if *indicator {
                    out.push(f32::from(u8::from(missing)));
                }
                true
            }
            Encoder::OneHot {
                levels,
                slots,
                other,
                mode,
                indicator,
            } => {
                let start = out.len();
                out.resize(start + levels.len() + usize::from(*other), 0.0);
                let slot = if missing {
                    Some(Some(*mode))
                } else {
                    slots.get(text).copied()
                };
                match slot {
                    Some(Some(k)) => out[start + k] = 1.0,
                    _ if *other => out[start + levels.len()] = 1.0,
                    _ => {}
                }
                if *indicator {
                    out.push(f32::from(u8::from(missing)));
                }
                slot.is_some()
            }
            Encoder::IndicatorOnly => {
                out.push(f32::from(u8::from(missing)));
                true
            }
        }
    }
}

/// A numeric column fitted on the training rows `train`: dropped, the indicator alone, or the
/// median and whether an indicator follows.
fn fit_numeric(
    raw: &Raw,
    column: usize,
    train: &[usize],
    decimal_comma: bool,
) -> (Treatment, Option<Encoder>) {
    let mut values: Vec<f32> = train
        .iter()
        .filter_map(|&r| match cell(&raw.records[r][column], decimal_comma) {
            Cell::Number { narrow, .. } => Some(narrow),
            _ => None,
        })
        .collect();
    let missing = train.len() - values.len();
    values.sort_by(f32::total_cmp);
    let (Some(&low), Some(&high)) = (values.first(), values.last()) else {
        return (Treatment::Dropped(Dropped::AllMissing), None);
    };
    if low == high {
        return if missing == 0 {
            (Treatment::Dropped(Dropped::Constant(low.to_string())), None)
        } else {
            let value = low.to_string();
            (
                Treatment::IndicatorOnly { value },
                Some(Encoder::IndicatorOnly),
            )
        };
    }
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        ((f64::from(values[n / 2 - 1]) + f64::from(values[n / 2])) / 2.0) as f32
    };
    let indicator = missing > 0;
    (
        Treatment::Numeric { median, indicator },
        Some(Encoder::Numeric { median, indicator }),
    )
}

/// A text column fitted on the training rows `train`: its number of levels there, and
/// dropped, the indicator alone, or one-hot columns for the `max_categories` most frequent.
fn fit_categorical(
    raw: &Raw,
    column: usize,
    train: &[usize],
    max_categories: usize,
) -> (usize, Treatment, Option<Encoder>) {
    let mut levels = tally(train.iter().filter_map(|&r| {
        let text = &raw.records[r][column];
        (!is_missing(text)).then_some((r, text))
    }));
    let present: usize = levels.iter().map(|&(_, count, _)| count).sum();
    let missing = train.len() - present;
    let count = levels.len();
    match (count, missing) {
        (0, _) => return (0, Treatment::Dropped(Dropped::AllMissing), None),
        (1, 0) => {
            let value = format!("{:?}", levels[0].0);
            return (1, Treatment::Dropped(Dropped::Constant(value)), None);
        }
        (1, _) => {
            let value = format!("{:?}", levels[0].0);
            return (
                1,
                Treatment::IndicatorOnly { value },
                Some(Encoder::IndicatorOnly),
            );
        }
        _ => {}
    }
    // Stable: ties stay in first-seen order.
    levels.sort_by_key(|&(_, count, _)| std::cmp::Reverse(count));
    let kept = count.min(max_categories);
    let slots = levels
        .iter()
        .enumerate()
        .map(|(k, &(level, _, _))| (level.to_string(), (k < kept).then_some(k)))
        .collect();
    let names: Vec<String> = levels[..kept]
        .iter()
        .map(|&(l, _, _)| l.to_string())
        .collect();
    let (other, indicator) = (count > kept, missing > 0);
    let treatment = Treatment::OneHot {
        levels: names.clone(),
        other,
        mode: names[0].clone(),
        indicator,
        unseen: 0,
    };
    let encoder = Encoder::OneHot {
        levels: names,
        slots,
        other,
        mode: 0,
        indicator,
    };
    (count, treatment, Some(encoder))
}
