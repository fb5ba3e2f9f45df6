//! The credit-default example's reader of a bank's own table (`examples/credit_risk/table.rs`):
//! small messy fixtures, written here to a scratch directory, each read to the exact encoded
//! values (one-hot, imputed median, missing indicators, dropped columns, names) or refused
//! with a message naming its line, column, value and fix; CSV dialects (a byte-order mark,
//! CRLF, `;` with decimal commas, tab, `|`, quoting, padding, blank lines) read alike; the
//! stratified split the one `Dataset::split_stratified` gave for an old seed, its counts the
//! same whatever the rows' order.

mod common;
// The whole example, `main.rs` and its modules, as the binary builds it.
#[path = "../examples/credit_risk/main.rs"]
#[allow(dead_code)]
mod app;

use app::{data, table};
use std::path::{Path, PathBuf};
use table::{read_table, Dropped, Kind, Table, TableOptions, Treatment};

/// A directory of `test`'s own under the system's temporary one.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("credit_table_{test}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` to `dir/name` and reads it with `options`; the error as text.
fn read(
    dir: &Path,
    name: &str,
    text: impl AsRef<[u8]>,
    options: &TableOptions,
) -> Result<Table, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    read_table(&path, options).map_err(|e| e.to_string())
}

/// `n` lines, `row(i)` each, newline-terminated.
fn rows(n: usize, row: impl Fn(usize) -> String) -> String {
    (0..n).map(|i| row(i) + "\n").collect()
}

/// A table of `n` records: the attribute `i` (the record's index, so a split shows which
/// records it took) and the label `y`, 1 where `positive(i)`.
fn indexed(n: usize, positive: impl Fn(usize) -> bool) -> String {
    "i,y\n".to_string() + &rows(n, |i| format!("{i},{}", u8::from(positive(i))))
}

/// Options for label `y`, changed by `edit`.
fn y(edit: impl FnOnce(&mut TableOptions)) -> TableOptions {
    let mut options = TableOptions::new("y");
    edit(&mut options);
    options
}

/// Each split's (negatives, positives).
fn counts(table: &Table) -> [(usize, usize); 3] {
    table
        .splits
        .each_ref()
        .map(|s| (s.len() - s.positives(), s.positives()))
}

/// A table with every kind of column, split by its own column so that each record's split is
/// known: `age` numeric with missing cells (NA, ?, n/a) in training and validation, a quoted
/// name with a comma `home, type` holding text (a quoted level with a comma, a missing one, a
/// level unseen in training), a constant column, an all-missing one, text labels, split
/// values in any case. The training split holds ages 30 (x40), 40, 45 and 60 (x40): median
/// 42.5; levels own (28), rent (28), mortgage (26), "rent, shared" (1): with 3 one-hot
/// columns the last goes to `other`, as does `boat`, unseen in training.
#[test]
fn a_messy_table_is_encoded_as_fitted_on_the_training_split() {
    let dir = scratch("messy");
    let mut text = String::from("age,\"home, type\",const,empty,y,fold\n");
    text += "40,own,4.5,,yes,train\n";
    text += "NA,\"rent, shared\",4.5,NA,no,train\n";
    text += "45,rent,4.5,?,no,TRAIN\n";
    text += "?,,4.5,nan,no,Training\n";
    text += "n/a,own,4.5,,yes,val\n";
    text += "33,boat,4.5,,no,validation\n";
    text += "70,rent,4.5,,yes,test\n";
    text += "71,own,4.5,,no,Test\n";
    text += &rows(96, |i| {
        let age = if i.is_multiple_of(2) { 30 } else { 60 };
        let home = ["own", "rent", "mortgage"][i % 3];
        let y = if i.is_multiple_of(4) { "yes" } else { "no" };
        let fold = match i {
            0..80 => "train",
            80..88 => "dev",
            _ => "testing",
        };
        format!("{age},{home},4.5,,{y},{fold}")
    });
    let options = y(|o| {
        o.positive = Some("yes".into());
        o.split_column = Some("fold".into());
        o.max_categories = 3;
    });
    let table = read(&dir, "messy.csv", &text, &options).unwrap();
    eprintln!("{}", table.summary());
    assert_eq!(
        (
            table.records,
            table.delimiter,
            table.positive.as_str(),
            table.split_by.as_str()
        ),
        (104, b',', "yes", "column \"fold\"")
    );
    let [train, val, test] = &table.splits;
    let names = [
        "age",
        "age (missing)",
        "home, type=own",
        "home, type=rent",
        "home, type=mortgage",
        "home, type=other",
        "home, type (missing)",
    ];
    for set in [train, val, test] {
        assert_eq!(set.names, names);
        assert_eq!(set.features, 7);
    }
    assert_eq!([train.len(), val.len(), test.len()], [84, 10, 10]);
    #[rustfmt::skip]
    let first_training = [
        40.0, 0.0,  1.0, 0.0, 0.0, 0.0, 0.0, // own
        42.5, 1.0,  0.0, 0.0, 0.0, 1.0, 0.0, // NA; "rent, shared": other
        45.0, 0.0,  0.0, 1.0, 0.0, 0.0, 0.0, // rent
        42.5, 1.0,  1.0, 0.0, 0.0, 0.0, 1.0, // ?; missing: own, the most frequent
    ];
    assert_eq!(train.records[..28], first_training);
    assert_eq!(train.labels[..4], [1.0, 0.0, 0.0, 0.0]);
    #[rustfmt::skip]
    let first_validation = [
        42.5, 1.0,  1.0, 0.0, 0.0, 0.0, 0.0, // n/a; own
        33.0, 0.0,  0.0, 0.0, 0.0, 1.0, 0.0, // boat, unseen: other
    ];
    assert_eq!(val.records[..14], first_validation);
    assert_eq!(test.records[..7], [70.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    for set in [train, val, test] {
        assert!(set.positives() > 0 && set.positives() < set.len());
    }

    let report: Vec<_> = table
        .columns
        .iter()
        .map(|c| (c.name.as_str(), &c.kind, c.missing, c.missing_held_out))
        .collect();
    assert_eq!(
        report,
        [
            ("age", &Kind::Numeric, 2, 1),
            ("home, type", &Kind::Categorical { levels: 4 }, 1, 0),
            ("const", &Kind::Numeric, 0, 0),
            ("empty", &Kind::Numeric, 84, 20),
            ("y", &Kind::Label, 0, 0),
            ("fold", &Kind::Split, 0, 0),
        ]
    );
    let treatments: Vec<_> = table.columns.iter().map(|c| c.treatment.clone()).collect();
    assert_eq!(
        treatments,
        [
            Treatment::Numeric {
                median: 42.5,
                indicator: true
            },
            Treatment::OneHot {
                levels: vec!["own".into(), "rent".into(), "mortgage".into()],
                other: true,
                mode: "own".into(),
                indicator: true,
                unseen: 1,
            },
            Treatment::Dropped(Dropped::Constant("4.5".into())),
            Treatment::Dropped(Dropped::AllMissing),
            Treatment::Label {
                positive: "\"yes\"".into(),
                positives: 27,
                negatives: 77
            },
            Treatment::Split {
                records: [84, 10, 10]
            },
        ]
    );
    assert_eq!(table.columns[1].encoded, names[2..]);
    assert!(table.columns[2].encoded.is_empty());
    let summary = table.summary();
    for expected in [
        "104 records, delimiter ',', split column \"fold\": training 84 / validation 10 / test 10; 7 encoded attributes",
        "standardized; imputed with median 42.5 + indicator column",
        "categorical, 4 levels",
        "one-hot 3 + other; imputed with \"own\" (most frequent) + indicator column; 1 validation/test cells of levels unseen in training: other",
        "dropped: constant 4.5",
        "dropped: all missing",
        "\"yes\" is a default: 27 defaults, 77 others",
        "not an attribute: training 84 / validation 10 / test 10",
    ] {
        assert!(summary.contains(expected), "{expected:?} not in\n{summary}");
    }
    // One line per column of the file, after the title and the column headings.
    assert_eq!(summary.lines().count(), 2 + 6);
    let again = read(&dir, "messy.csv", &text, &options).unwrap();
    assert_eq!(again.summary(), summary);
    for (a, b) in again.splits.iter().zip(&table.splits) {
        assert_eq!((&a.records, &a.labels), (&b.records, &b.labels));
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// One table written as spreadsheets and scripts export it: a byte-order mark and CRLF, `;`
/// with decimal commas, tab, `|` with every field quoted, fields padded with spaces among
/// blank lines, and a delimiter named rather than sniffed. Each reads to the same datasets
/// as the plain comma-separated file.
#[test]
fn csv_dialects_read_alike() {
    let dir = scratch("dialects");
    let row = |i: usize, decimal: char| {
        [
            format!("{i}{decimal}5"),
            format!("-{}", i % 7),
            ["x y", "x y", "x y", "z, w", "z, w", "v"][i % 6].to_string(),
            u8::from(i.is_multiple_of(6)).to_string(),
        ]
    };
    let header = ["a", "b", "c", "y"].map(String::from);
    let write = |delimiter: &str, decimal: char, quote: fn(&str) -> String, end: &str| {
        std::iter::once(header.clone())
            .chain((0..120).map(|i| row(i, decimal)))
            .map(|fields| fields.map(|f| quote(&f)).join(delimiter) + end)
            .collect::<String>()
    };
    let plain = |f: &str| {
        if f.contains(',') {
            format!("\"{f}\"")
        } else {
            f.to_string()
        }
    };
    let comma = write(",", '.', plain, "\n");
    // Spaces inside the quotes: outside, they would hide the quote from the parser (as in
    // pandas without `skipinitialspace`).
    let pad = |f: &str| {
        if f.contains(',') {
            format!("\" {f} \"")
        } else {
            format!("  {f}   ")
        }
    };
    let padded: String = write(",", '.', pad, "\n")
        .lines()
        .enumerate()
        .map(|(k, line)| {
            if k % 10 == 3 {
                format!("\n   \n{line}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let cases: [(&str, String, Option<u8>, u8); 7] = [
        ("comma", comma.clone(), None, b','),
        (
            "bom crlf",
            format!("\u{feff}{}", write(",", '.', plain, "\r\n")),
            None,
            b',',
        ),
        (
            "semicolon, decimal comma",
            write(";", ',', |f| f.to_string(), "\n"),
            None,
            b';',
        ),
        (
            "tab",
            write("\t", '.', |f| f.to_string(), "\n"),
            None,
            b'\t',
        ),
        (
            "pipe, quoted",
            write("|", '.', |f| format!("\"{f}\""), "\r\n"),
            None,
            b'|',
        ),
        ("padded, blank lines", padded, None, b','),
        (
            "named tab",
            write("\t", '.', |f| f.to_string(), "\n"),
            Some(b'\t'),
            b'\t',
        ),
    ];
    let reference = read(&dir, "comma.csv", &comma, &y(|_| {})).unwrap();
    assert_eq!(
        reference.splits[0].names,
        ["a", "b", "c=x y", "c=z, w", "c=v"]
    );
    assert_eq!(reference.records, 120);
    for (name, text, delimiter, expected) in cases {
        let table = read(&dir, "dialect.csv", &text, &y(|o| o.delimiter = delimiter))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(table.delimiter, expected, "{name}");
        assert_eq!(table.records, 120, "{name}");
        for (set, want) in table.splits.iter().zip(&reference.splits) {
            assert_eq!(set.names, want.names, "{name}");
            assert_eq!(set.records, want.records, "{name}");
            assert_eq!(set.labels, want.labels, "{name}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// pandas' default missing values and UCI's `?` are missing wherever they stand: in a numeric
/// column each is the training split's median with the indicator set, in a text column the
/// most frequent level with its indicator; `NAN`, another spelling of NaN, too.
#[test]
fn every_missing_spelling_is_imputed() {
    let dir = scratch("missing");
    let spellings = [
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "?", "NAN",
    ];
    let text = "a,c,y\n".to_string()
        + &rows(150, |i| {
            let cell = |other: String| spellings.get(i).map_or(other, |s| s.to_string());
            let c = cell(if i.is_multiple_of(3) { "p" } else { "q" }.to_string());
            format!(
                "{},{c},{}",
                cell(format!("{}", i % 10)),
                u8::from(i.is_multiple_of(5))
            )
        });
    let table = read(&dir, "missing.csv", &text, &y(|_| {})).unwrap();
    let names = ["a", "a (missing)", "c=q", "c=p", "c (missing)"];
    assert_eq!(table.splits[0].names, names, "{}", table.summary());
    let missing: usize = table.columns[..2]
        .iter()
        .map(|c| c.missing + c.missing_held_out)
        .sum();
    assert_eq!(missing, 2 * spellings.len());
    let Treatment::Numeric {
        median,
        indicator: true,
    } = table.columns[0].treatment
    else {
        panic!("{:?}", table.columns[0].treatment)
    };
    let mut flagged = 0;
    for set in &table.splits {
        for row in set.records.chunks(5) {
            assert_eq!(
                row[1], row[4],
                "both columns are missing on the same records"
            );
            if row[1] == 1.0 {
                flagged += 1;
                assert_eq!(row[0], median);
            }
        }
    }
    assert_eq!(flagged, spellings.len());
    std::fs::remove_dir_all(&dir).ok();
}

/// Labels 0/1 as numbers (1 a default, or 0 with `--positive 0`), or text with `--positive`
/// naming the default's value exactly (German credit's 1/2 included); refused without it,
/// with a value not there, with a third value, with a missing label: each message lists the
/// values with their counts and says the fix.
#[test]
fn labels_are_numbers_or_named_text() {
    let dir = scratch("labels");
    let table_of = |label: fn(usize) -> &'static str| {
        "a,y\n".to_string() + &rows(120, |i| format!("{i},{}", label(i)))
    };
    let zero_one = table_of(|i| ["1.0", "0", "0.0", "0", "0", "0"][i % 6]);
    let text = table_of(|i| if i.is_multiple_of(6) { "yes" } else { "no" });
    let german = table_of(|i| if i.is_multiple_of(6) { "2" } else { "1" });
    let positive = |p: &str| y(|o| o.positive = Some(p.into()));
    for (name, text, options, (expected, defaults)) in [
        ("0/1", &zero_one, y(|_| {}), ("1", 20)),
        ("0/1, --positive 0", &zero_one, positive("0"), ("0", 100)),
        ("0/1, --positive 1.0", &zero_one, positive("1.0"), ("1", 20)),
        (
            "yes/no, --positive yes",
            &text,
            positive("yes"),
            ("yes", 20),
        ),
        ("yes/no, --positive no", &text, positive("no"), ("no", 100)),
        ("1/2, --positive 2", &german, positive("2"), ("2", 20)),
    ] {
        let table =
            read(&dir, "labels.csv", text, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(table.positive, expected, "{name}");
        let positives: usize = table.splits.iter().map(|s| s.positives()).sum();
        assert_eq!(positives, defaults, "{name}");
    }
    let three = text.replacen("\n7,no\n", "\n7,maybe\n", 1);
    let missing = text.replacen("\n9,no\n", "\n9,NA\n", 1);
    for (name, text, options, expected) in [
        (
            "text without --positive",
            &text,
            y(|_| {}),
            "column \"y\": the labels are not 0 and 1 (\"yes\": 20 records, first on line 2; \"no\": 100 records, first on line 3): name the value that marks a default with --positive VALUE",
        ),
        (
            "1/2 without --positive",
            &german,
            y(|_| {}),
            "(\"2\": 20 records, first on line 2; \"1\": 100 records, first on line 3)",
        ),
        (
            "--positive in another case",
            &text,
            positive("Yes"),
            "--positive \"Yes\" is not a value of column \"y\" (\"yes\": 20 records",
        ),
        (
            "text --positive on 0/1 labels",
            &zero_one,
            positive("yes"),
            "--positive \"yes\" is not a value of column \"y\" (\"1\": 20 records, first on line 2; \"0\": 100 records, first on line 3): name one of them",
        ),
        (
            "a third value",
            &three,
            positive("yes"),
            "line 9, column \"y\": a third label value \"maybe\" (\"yes\": 20 records, first on line 2; \"no\": 99 records, first on line 3; \"maybe\": 1 record, first on line 9): a default or not takes two values",
        ),
        (
            "a missing label",
            &missing,
            positive("yes"),
            "line 11, column \"y\": the label is missing (\"NA\"): drop the record or label it",
        ),
    ] {
        let error = read(&dir, "labels.csv", text, &options).err().unwrap_or_else(|| panic!("{name}: read"));
        assert!(error.contains(expected), "{name}: {error}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The stratified split is the generator's (`data::stratified_rows`): a table sorted by label
/// (every default last) gives each split both labels in the table's proportion, and an old
/// seed the records it gave before the table reader existed (these indices were the
/// validation and test records of `Dataset::split_stratified(7)` on this table). The same
/// seed gives the same datasets; another seed others.
#[test]
fn a_table_sorted_by_label_splits_as_before() {
    let dir = scratch("sorted");
    let text = indexed(200, |i| i >= 160);
    let table = read(&dir, "sorted.csv", &text, &y(|_| {})).unwrap();
    assert_eq!(counts(&table), [(128, 32), (16, 4), (16, 4)]);
    assert_eq!(table.split_by, "stratified by label, shuffled with seed 7");
    let [train, val, test] = &table.splits;
    #[rustfmt::skip]
    let (validation, testing): ([f32; 20], [f32; 20]) = (
        [7.0, 9.0, 20.0, 23.0, 25.0, 28.0, 36.0, 37.0, 43.0, 49.0, 72.0, 78.0, 101.0, 138.0, 144.0, 156.0, 162.0, 166.0, 167.0, 199.0],
        [2.0, 3.0, 16.0, 41.0, 42.0, 54.0, 60.0, 84.0, 97.0, 113.0, 124.0, 127.0, 142.0, 146.0, 151.0, 154.0, 181.0, 188.0, 189.0, 196.0],
    );
    assert_eq!(
        (val.records.as_slice(), test.records.as_slice()),
        (&validation[..], &testing[..])
    );
    assert!(
        train.records.windows(2).all(|w| w[0] < w[1]),
        "each split in file order"
    );
    let again = read(&dir, "sorted.csv", &text, &y(|_| {})).unwrap();
    assert_eq!(again.splits[0].records, train.records);
    let other = read(&dir, "sorted.csv", &text, &y(|o| o.seed = 8)).unwrap();
    assert_ne!(other.splits[0].records, train.records);
    assert_eq!(counts(&other), counts(&table));
    std::fs::remove_dir_all(&dir).ok();
}

/// Shuffling a table's rows changes which records each split takes, never how many defaults
/// and others it holds: the split is stratified, not in file order.
#[test]
fn shuffled_rows_split_with_the_same_counts() {
    let dir = scratch("shuffled");
    let lines: Vec<String> = (0..300_usize)
        .map(|i| format!("{i},{}", u8::from(i.is_multiple_of(7))))
        .collect();
    let table = read(
        &dir,
        "table.csv",
        format!("i,y\n{}\n", lines.join("\n")),
        &y(|_| {}),
    )
    .unwrap();
    let expected = counts(&table);
    assert_eq!(expected, [(207, 35), (25, 4), (25, 4)]);
    for seed in 1..5 {
        let order = data::Rng::new(seed).permutation(lines.len());
        let shuffled: Vec<&str> = order.iter().map(|&k| lines[k as usize].as_str()).collect();
        let text = format!("i,y\n{}\n", shuffled.join("\n"));
        let table = read(&dir, "shuffled.csv", &text, &y(|_| {})).unwrap();
        assert_eq!(counts(&table), expected, "rows shuffled with seed {seed}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Text columns: the `--max-categories` most frequent levels of the training split (ties:
/// the first seen) each get a column, most frequent first, the rest `other`; without an
/// `other` column a level unseen in training is all zeros. A column half numbers, half text
/// is text (`h`); more than half numbers is refused (see `tables_are_refused_with_the_fix`).
#[test]
fn text_columns_are_one_hot_encoded_up_to_the_cap() {
    let dir = scratch("categories");
    // Training (records 0..100): L0..L29 three times each, then `late` ten times.
    let text = "c,h,y,fold\n".to_string()
        + &rows(120, |i| {
            let c = match i {
                0..90 => format!("L{}", i % 30),
                90..100 => "late".to_string(),
                100 => "L99".to_string(),
                _ => format!("L{}", i % 30),
            };
            let h = if i.is_multiple_of(2) { "1" } else { "x" };
            let fold =
                ["train", "validation", "test"][usize::from(i >= 100) + usize::from(i >= 110)];
            format!("{c},{h},{},{fold}", u8::from(i.is_multiple_of(4)))
        });
    let split = |cap: usize| {
        y(|o| {
            o.split_column = Some("fold".into());
            o.max_categories = cap;
        })
    };
    let table = read(&dir, "levels.csv", &text, &split(5)).unwrap();
    let names = [
        "c=late", "c=L0", "c=L1", "c=L2", "c=L3", "c=other", "h=1", "h=x",
    ];
    assert_eq!(table.splits[0].names, names);
    assert_eq!(table.columns[0].kind, Kind::Categorical { levels: 31 });
    assert_eq!(table.columns[1].kind, Kind::Categorical { levels: 2 });
    let [train, val, _] = &table.splits;
    let row = |set: &data::Dataset, r: usize| set.records[r * 8..(r + 1) * 8].to_vec();
    assert_eq!(row(train, 0), [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]); // L0, "1"
    assert_eq!(row(train, 5), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]); // L5: other, "x"
    assert_eq!(row(train, 95), [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]); // late
    assert_eq!(row(val, 0), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]); // L99, unseen: other
    assert!(table.summary().contains(
        "one-hot 5 + other; 1 validation/test cells of levels unseen in training: other"
    ));

    let table = read(&dir, "levels.csv", &text, &split(40)).unwrap();
    let [train, val, _] = &table.splits;
    assert_eq!(train.features, 31 + 2);
    assert!(!train.names.iter().any(|n| n == "c=other"));
    assert_eq!(train.names[..3], ["c=late", "c=L0", "c=L1"]);
    assert!(
        val.records[..31].iter().all(|&v| v == 0.0),
        "L99, unseen, no other: all zeros"
    );
    assert!(table
        .summary()
        .contains("one-hot 31; 1 validation/test cells of levels unseen in training: no column"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Tables refused, each with the line (the header is line 1; blank lines and a quoted line
/// break counted), the column, the value and the fix: ragged lines, no header row, the wrong
/// delimiter, a typo in a numeric column, a number beyond f32 or not finite, one class or two
/// defaults, split values not understood or a split left with one label, nothing to learn
/// from, text not UTF-8, a duplicated or missing column, too few records.
#[test]
fn tables_are_refused_with_the_fix() {
    let dir = scratch("refused");
    let numeric = |n: usize| rows(n, |i| format!("{i},{}", u8::from(i.is_multiple_of(5))));
    let with_fold = |fold: fn(usize) -> &'static str| {
        "a,y,fold\n".to_string()
            + &rows(120, |i| {
                format!("{i},{},{}", u8::from(i.is_multiple_of(5)), fold(i))
            })
    };
    let wide: Vec<String> = (0..15).map(|k| format!("c{k}")).collect();
    let cases: Vec<(&str, Vec<u8>, TableOptions, &[&str])> = vec![
        (
            "ragged",
            b"a,y\n1,0,7\n".to_vec(),
            y(|_| {}),
            &["line 2: 3 fields, the header has 2 (delimiter ','): quote a field that holds the delimiter"],
        ),
        ("ragged after a blank line", b"a,y\r\n1,0\r\n\r\n2\r\n".to_vec(), y(|_| {}), &["line 4: 1 fields, the header has 2"]),
        ("ragged after a quoted line break", b"a,y\n\"multi\nline\",0\n1,0,5\n".to_vec(), y(|_| {}), &["line 4: 3 fields"]),
        (
            "no header row",
            b"31,0,5.5\n45,1,-2e3\n".to_vec(),
            y(|_| {}),
            &["line 1: no column \"y\" (--label) in the header: \"31\", \"0\", \"5.5\"; every header field is a number: the file seems to have no header row; add one"],
        ),
        (
            "a long header",
            format!("{},y2\n", wide.join(",")).into_bytes(),
            y(|_| {}),
            &["\"c10\", \"c11\" … and 4 more; name one of these columns with --label, spelled exactly"],
        ),
        (
            "a named delimiter that is not the file's",
            ("a;b;y\n".to_string() + &rows(120, |i| format!("{i};1;0"))).into_bytes(),
            y(|o| o.delimiter = Some(b',')),
            &["line 1: no column \"y\" (--label) in the header: \"a;b;y\"; the header is a single field, delimited by ',', and the file holds ';': pass --delimiter ';'"],
        ),
        (
            "a label alone, tabs in the records",
            b"y\n1\t0\n0\t1\n".to_vec(),
            y(|_| {}),
            &["line 1: no attribute columns besides \"y\"; the header is a single field, delimited by ',', and the file holds '\\t': pass --delimiter '\\t'"],
        ),
        (
            "a typo in a numeric column",
            ("a,y\n".to_string() + &numeric(6) + "n/k,1\n" + &numeric(100)).into_bytes(),
            y(|_| {}),
            &["line 8, column \"a\": \"n/k\" is text in a column of numbers (106 numbers, 1 text cells): correct it, or write a missing value as empty or NA"],
        ),
        (
            "beyond f32",
            ("a,y\n".to_string() + &numeric(150)).replacen("\n1,0\n", "\n1e39,0\n", 1).into_bytes(),
            y(|_| {}),
            &["line 3, column \"a\": \"1e39\" is not a finite number in f32 (the device's type: magnitudes up to 3.4028235e38): rescale the column"],
        ),
        ("beyond f32, negative", b"a,y\n-3.5e38,1\n".to_vec(), y(|_| {}), &["\"-3.5e38\" is not a finite number in f32"]),
        (
            "infinite",
            b"a,y\ninf,1\n".to_vec(),
            y(|_| {}),
            &["line 2, column \"a\": \"inf\" is not a finite number: replace it, or leave the cell empty"],
        ),
        ("-Infinity", b"a,y\n2,0\n-Infinity,1\n".to_vec(), y(|_| {}), &["line 3, column \"a\": \"-Infinity\" is not a finite number"]),
        (
            "one class",
            indexed(200, |_| false).into_bytes(),
            y(|_| {}),
            &["0 records labelled 1: the training, validation and test splits each need records of both labels", "add records labelled 1"],
        ),
        ("two defaults", indexed(200, |i| i < 2).into_bytes(), y(|_| {}), &["2 records labelled 1: "]),
        (
            "two non-defaults, text",
            ("a,y\n".to_string() + &rows(120, |i| format!("{i},{}", if i < 2 { "good" } else { "bad" }))).into_bytes(),
            y(|o| o.positive = Some("bad".into())),
            &["2 records labelled \"good\": ", "add records labelled \"good\""],
        ),
        (
            "one text class",
            ("a,y\n".to_string() + &rows(120, |i| format!("{i},no"))).into_bytes(),
            y(|o| o.positive = Some("yes".into())),
            &["--positive \"yes\" is not a value of column \"y\" (\"no\": 120 records, first on line 2)"],
        ),
        (
            "a split value not understood",
            with_fold(|i| if i == 3 { "holdout" } else { "train" }).into_bytes(),
            y(|o| o.split_column = Some("fold".into())),
            &["line 5, column \"fold\": \"holdout\" is not a split: write train, validation or test"],
        ),
        (
            "an empty split",
            with_fold(|i| if i < 100 { "train" } else { "test" }).into_bytes(),
            y(|o| o.split_column = Some("fold".into())),
            &["the validation split (column \"fold\") holds 0 records, 0 defaults and 0 others"],
        ),
        (
            "a split without defaults",
            with_fold(|i| match i % 10 {
                1 => "val",
                6 => "test",
                _ => "train",
            })
            .into_bytes(),
            y(|o| o.split_column = Some("fold".into())),
            &["the validation split (column \"fold\") holds 12 records, 0 defaults and 12 others: ROC AUC and precision need both labels; move records of both labels into it"],
        ),
        (
            "a split column missing",
            indexed(120, |i| i.is_multiple_of(5)).into_bytes(),
            y(|o| o.split_column = Some("fold".into())),
            &["line 1: no column \"fold\" (--split-column) in the header: \"i\", \"y\"; name one of these columns with --split-column"],
        ),
        (
            "the split column is the label",
            indexed(120, |i| i.is_multiple_of(5)).into_bytes(),
            y(|o| o.split_column = Some("y".into())),
            &["--split-column \"y\" is the label's column"],
        ),
        (
            "nothing to learn from",
            ("c,d,y\n".to_string() + &rows(120, |i| format!("4.5,,{}", u8::from(i.is_multiple_of(5))))).into_bytes(),
            y(|_| {}),
            &["no attribute column is left, each is constant or all missing in the training split (\"c\": constant 4.5, \"d\": all missing): add columns that vary"],
        ),
        (
            "not UTF-8",
            b"city,y\nBerlin,0\nM\xfcnchen,1\n".to_vec(),
            y(|_| {}),
            &["line 3, column \"city\": not UTF-8 text: save the table as UTF-8"],
        ),
        (
            "a column named twice",
            b"a,y,a\n1,0,2\n".to_vec(),
            y(|_| {}),
            &["line 1: the header names column \"a\" twice (columns 1 and 3): rename one"],
        ),
        ("too few records", indexed(60, |i| i.is_multiple_of(2)).into_bytes(), y(|_| {}), &["60 records: at least 100 are needed"]),
        ("no one-hot column", indexed(120, |i| i.is_multiple_of(5)).into_bytes(), y(|o| o.max_categories = 0), &["--max-categories 0"]),
    ];
    for (name, text, options, expected) in cases {
        let error = read(&dir, "bad.csv", text, &options)
            .err()
            .unwrap_or_else(|| panic!("{name}: read"));
        for expected in expected {
            assert!(error.contains(expected), "{name}: {error}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The cases of the reader this one replaces (`data::read_csv`), each still read or refused:
/// the label column anywhere, names and fields trimmed, blank lines skipped, a byte-order
/// mark and CRLF, a value beyond f32's smallest read as 0; malformed files refused with their
/// line, column and value named. Its small tables are padded to the 100 records a table
/// needs; `nan`, which it refused, is a missing value now, and labels other than 0 and 1
/// are text that needs `--positive`.
#[test]
fn a_users_table_is_read_or_refused() {
    let dir = scratch("ported");
    // Every record of every split, with its label.
    let all = |table: &Table| -> Vec<(Vec<f32>, f32)> {
        table
            .splits
            .iter()
            .flat_map(|s| {
                s.records
                    .chunks(s.features)
                    .map(|r| r.to_vec())
                    .zip(s.labels.iter().copied())
            })
            .collect()
    };
    let good = "age,defaulted, income\n31,0,5.5\n\n45,1,-2e3\n".to_string()
        + &rows(120, |i| {
            format!("{},{},{i}.25", 20 + i, u8::from(i.is_multiple_of(5)))
        });
    let table = read(&dir, "good.csv", &good, &TableOptions::new("defaulted")).unwrap();
    assert_eq!(table.splits[0].features, 2);
    assert_eq!(table.splits[0].names, ["age", "income"]);
    assert_eq!(table.records, 122);
    let records = all(&table);
    assert!(records.contains(&(vec![31.0, 5.5], 0.0)), "{records:?}");
    assert!(records.contains(&(vec![45.0, -2000.0], 1.0)));

    let exported = "\u{feff}a,y\r\n3.4e38,1.0\r\n1e-50,0\r\n".to_string()
        + &rows(120, |i| format!("{i},{}\r", u8::from(i.is_multiple_of(5))));
    let table = read(&dir, "exported.csv", &exported, &y(|_| {})).unwrap();
    assert_eq!(table.splits[0].names, ["a"]);
    let records = all(&table);
    assert!(records.contains(&(vec![3.4e38], 1.0)) && records.contains(&(vec![0.0], 0.0)));

    let nan = "a,y\n1,0\nnan,1\n".to_string()
        + &rows(120, |i| format!("{i},{}", u8::from(i.is_multiple_of(5))));
    let table = read(&dir, "nan.csv", &nan, &y(|_| {})).unwrap();
    let a = &table.columns[0];
    assert_eq!(
        a.missing + a.missing_held_out,
        1,
        "nan is missing: {}",
        table.summary()
    );
    assert_eq!(
        table.splits[0].names.len(),
        1 + a.missing,
        "an indicator where training has it"
    );
    let text_cell = "a,y\n1,0\nx,1\n".to_string() + &rows(120, |i| format!("{i},0"));

    for (text, expected) in [
        ("a,y\n1,0\n1e39,1\n", "line 3, column \"a\": \"1e39\" is not a finite number in f32"),
        ("a,y\n-3.5e38,1\n", "\"-3.5e38\" is not a finite number in f32"),
        ("a,y\ninf,1\n", "line 2, column \"a\": \"inf\" is not a finite number"),
        ("a,y\n-Infinity,1\n", "\"-Infinity\" is not a finite number"),
        (
            "a,y\n1,0\n1,inf\n",
            "column \"y\": the labels are not 0 and 1 (\"0\": 1 record, first on line 2; \"inf\": 1 record, first on line 3)",
        ),
        ("a,y\n1,yes\n", "(\"yes\": 1 record, first on line 2): name the value that marks a default with --positive VALUE"),
        ("a,y\n1,0.5\n", "(\"0.5\": 1 record, first on line 2)"),
        ("a,y\n1,\n", "line 2, column \"y\": the label is missing (\"\")"),
        ("a,y\n1,0,7\n", "line 2: 3 fields, the header has 2"),
        ("a,y,a\n1,0,2\n", "names column \"a\" twice (columns 1 and 3)"),
        ("a,y\n", "a header row and no records"),
        ("a,y\n\n  \n", "a header row and no records"),
        (" \n\n", "an empty file"),
        ("a,b\n1,2\n", "no column \"y\" (--label) in the header: \"a\", \"b\""),
        ("a,y\n1,0\n2\n", "line 3: 1 fields"),
        (text_cell.as_str(), "line 3, column \"a\": \"x\" is text in a column of numbers"),
        ("a,y\n1,2\n", "(\"2\": 1 record, first on line 2)"),
        ("y\n1\n", "line 1: no attribute columns besides \"y\""),
        ("", "an empty file"),
    ] {
        let error = read(&dir, "bad.csv", text, &y(|_| {})).err().unwrap_or_else(|| panic!("{text:?}: read"));
        assert!(error.contains(expected), "{text:?}: {error}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
