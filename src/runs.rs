//! Run directories of the experiment harnesses (`jghm rates`, `jghm reproduce`, the width sweep
//! of `jghm emulate`): the settings a run was started with, and its result rows.
//!
//! A [`RunDir`] holds a settings file (JSON, written when a run starts and compared field by
//! field when it resumes) and a result file (CSV, one row per finished unit of work). A [`Sink`]
//! keeps the rows in memory and rewrites the whole file atomically after every unit
//! ([`crate::files::write_atomic`]), so an interrupted run keeps what it finished and `--resume`
//! continues from there.
//!
//! Result and settings files are untrusted input (a resume may find a truncated, edited or
//! foreign file): every read ends either in the rows or in one [`RunDirError`] naming the file,
//! the line or field, and the problem; a refused file is never overwritten. Rows go through
//! serde and the `csv` crate ([`CsvRow`]); [`format`](mod@format) keeps the number formats of the files
//! already written, so a rewritten file is the same byte for byte.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::files::{write_atomic, FileError};

/// What went wrong with a run directory or one of its files; each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot create '{}'", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read '{}'", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot read settings '{}'", path.display())]
    ReadSettings { path: PathBuf, source: std::io::Error },
    #[error("settings '{}' are not valid JSON", path.display())]
    SettingsJson { path: PathBuf, source: serde_json::Error },
    #[error("settings '{}' must be a JSON object", path.display())]
    SettingsNotObject { path: PathBuf },
    #[error("settings '{}': unknown field '{field}'", path.display())]
    UnknownSetting { path: PathBuf, field: String },
    #[error("invalid settings '{}'", path.display())]
    InvalidSettings { path: PathBuf, source: serde_json::Error },
    #[error("--resume: no {kind} to resume in '{}' (cannot read {file})", dir.display())]
    NothingToResume { dir: PathBuf, kind: &'static str, file: String, source: std::io::Error },
    #[error("--resume: '{}' is not valid JSON", path.display())]
    ResumeJson { path: PathBuf, source: serde_json::Error },
    #[error("--resume: the {kind} in '{}' {explanation}", dir.display())]
    OtherSettings { dir: PathBuf, kind: &'static str, explanation: String },
    #[error("'{}' already holds a {kind} ({file}): continue it with --resume, or choose another --out", dir.display())]
    AlreadyHolds { dir: PathBuf, kind: &'static str, file: String },
    #[error("'{}' is not {what} (unexpected header)", path.display())]
    Header { path: PathBuf, what: &'static str },
    #[error("'{}' line {line}: malformed row: {reason}", path.display())]
    MalformedRow { path: PathBuf, line: u64, reason: String },
    #[error("cannot encode the rows of '{}': {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
}

/// What is wrong with one field of a parsed row (beyond what its type checks).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field '{field}': {problem}")]
pub struct BadField {
    pub field: &'static str,
    pub problem: String,
}

/// A field of an overlay that the base does not have.
#[derive(Debug, thiserror::Error)]
#[error("unknown field '{0}'")]
pub struct UnknownField(pub String);

/// What [`overlay_json`] does with a field the base lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewFields {
    /// Refuse it (the base lists every field: a typo must not pass silently).
    Refuse,
    /// Add it (the base leaves optional fields out; the type's deserialiser judges them).
    Insert,
}

/// `base ← base ∪ over`, recursively for objects: a field of `over` replaces the base's, an
/// object field is overlaid field by field. The error names the first new field (dotted path)
/// under [`NewFields::Refuse`]; `base` may then be partly overlaid.
pub fn overlay_json(base: &mut Value, over: Value, new_fields: NewFields) -> Result<(), UnknownField> {
    fn go(base: &mut Value, over: Value, new_fields: NewFields, path: &str) -> Result<(), UnknownField> {
        match (base, over) {
            (Value::Object(b), Value::Object(o)) => {
                for (k, v) in o {
                    let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    match b.get_mut(&k) {
                        Some(slot) if slot.is_object() && v.is_object() => go(slot, v, new_fields, &here)?,
                        Some(slot) => *slot = v,
                        None if new_fields == NewFields::Refuse => return Err(UnknownField(here)),
                        None => {
                            b.insert(k, v);
                        }
                    }
                }
                Ok(())
            }
            (b, o) => {
                *b = o;
                Ok(())
            }
        }
    }
    go(base, over, new_fields, "")
}

/// `base` with the fields of the JSON object in `path` overlaid ([`overlay_json`], unknown
/// fields refused), then deserialised: the settings of a run given as a file.
pub fn settings_from_file<T: Serialize + DeserializeOwned>(base: &T, path: &Path) -> Result<T, RunDirError> {
    let bytes = std::fs::read(path).map_err(|source| RunDirError::ReadSettings { path: path.to_path_buf(), source })?;
    let over: Value = serde_json::from_slice(&bytes)
        .map_err(|source| RunDirError::SettingsJson { path: path.to_path_buf(), source })?;
    if !over.is_object() {
        return Err(RunDirError::SettingsNotObject { path: path.to_path_buf() });
    }
    let mut merged = serde_json::to_value(base).expect("settings serialise to JSON");
    overlay_json(&mut merged, over, NewFields::Refuse)
        .map_err(|UnknownField(field)| RunDirError::UnknownSetting { path: path.to_path_buf(), field })?;
    serde_json::from_value(merged).map_err(|source| RunDirError::InvalidSettings { path: path.to_path_buf(), source })
}

/// The dotted path of the first field where `old` and `new` differ (`""`: the values themselves).
pub fn first_difference(old: &Value, new: &Value) -> Option<String> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let keys = n.keys().chain(o.keys().filter(|k| !n.contains_key(*k)));
            for k in keys {
                let (a, b) = (o.get(k).unwrap_or(&Value::Null), n.get(k).unwrap_or(&Value::Null));
                if let Some(rest) = first_difference(a, b) {
                    return Some(if rest.is_empty() { k.clone() } else { format!("{k}.{rest}") });
                }
            }
            None
        }
        _ => (old != new).then(String::new),
    }
}

/// A folder with one run: its settings file and its result file.
#[derive(Clone, Debug)]
pub struct RunDir {
    pub dir: PathBuf,
    /// What the folder holds, for messages: `sweep`, `run`.
    pub kind: &'static str,
    pub settings_file: String,
    pub results_file: String,
}

impl RunDir {
    pub fn new(dir: &Path, kind: &'static str, settings_file: &str, results_file: &str) -> RunDir {
        RunDir { dir: dir.to_path_buf(), kind, settings_file: settings_file.into(), results_file: results_file.into() }
    }

    pub fn settings_path(&self) -> PathBuf {
        self.dir.join(&self.settings_file)
    }

    pub fn results_path(&self) -> PathBuf {
        self.dir.join(&self.results_file)
    }

    /// Starts the run: creates the folder; a fresh start refuses a folder that already holds
    /// results and writes `settings`; a resume reads the settings file, compares it with
    /// `settings` (`explain` turns the first differing field's dotted path into the end of the
    /// message) and reads the finished rows. Nothing is written before every check passed.
    pub fn start<R: CsvRow>(
        &self,
        settings: &Value,
        resume: bool,
        explain: &dyn Fn(&str) -> String,
    ) -> Result<Sink<R>, RunDirError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| RunDirError::CreateDir { path: self.dir.clone(), source })?;
        let results = self.results_path();
        if resume {
            self.check_settings(settings, explain)?;
            return Sink::resume(&results);
        }
        if results.exists() {
            return Err(RunDirError::AlreadyHolds {
                dir: self.dir.clone(),
                kind: self.kind,
                file: self.results_file.clone(),
            });
        }
        write_atomic(&self.settings_path(), format!("{settings:#}\n").as_bytes())?;
        Ok(Sink::fresh(&results))
    }

    fn check_settings(&self, settings: &Value, explain: &dyn Fn(&str) -> String) -> Result<(), RunDirError> {
        let path = self.settings_path();
        let bytes = std::fs::read(&path).map_err(|source| RunDirError::NothingToResume {
            dir: self.dir.clone(),
            kind: self.kind,
            file: self.settings_file.clone(),
            source,
        })?;
        let old: Value = serde_json::from_slice(&bytes).map_err(|source| RunDirError::ResumeJson { path, source })?;
        match first_difference(&old, settings) {
            None => Ok(()),
            Some(field) => {
                Err(RunDirError::OtherSettings { dir: self.dir.clone(), kind: self.kind, explanation: explain(&field) })
            }
        }
    }
}

/// A row type of a result file: its CSV record (field order = header order) and the
/// conversions both ways. The record may differ from the row (column order, number formats
/// kept from files already written); reading checks what a parse cannot (a known task, ...).
pub trait CsvRow: Sized {
    type Record: Serialize + DeserializeOwned;
    /// The header line's fields, in the record's field order.
    const HEADER: &'static [&'static str];
    /// What a file of these rows is, for errors: "a results file of `jghm rates`".
    const WHAT: &'static str;
    fn to_record(&self) -> Self::Record;
    /// The row of a parsed record; the error names the field that is wrong.
    fn from_record(record: Self::Record) -> Result<Self, BadField>;
}

/// The CSV text of `rows` (header first, `\n` line ends), as [`write_csv`] writes it.
pub fn csv_bytes<R: CsvRow>(rows: &[R], path: &Path) -> Result<Vec<u8>, RunDirError> {
    let encode = |e: csv::Error| RunDirError::Encode { path: path.to_path_buf(), reason: e.to_string() };
    let mut w =
        csv::WriterBuilder::new().has_headers(false).terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(R::HEADER).map_err(encode)?;
    for r in rows {
        w.serialize(r.to_record()).map_err(encode)?;
    }
    w.into_inner().map_err(|e| RunDirError::Encode { path: path.to_path_buf(), reason: e.to_string() })
}

/// Writes `rows` to `path` atomically.
pub fn write_csv<R: CsvRow>(path: &Path, rows: &[R]) -> Result<(), RunDirError> {
    Ok(write_atomic(path, &csv_bytes(rows, path)?)?)
}

/// Field values no result file holds: every number of a finished unit of work is finite.
fn non_finite(field: &[u8]) -> bool {
    let s = String::from_utf8_lossy(field).to_ascii_lowercase();
    let s = s.trim().trim_start_matches(['+', '-']);
    matches!(s, "nan" | "inf" | "infinity")
}

/// Reads a file written by [`write_csv`] (fields trimmed, blank lines skipped); the error
/// names the file, the line and the field.
pub fn read_csv<R: CsvRow>(path: &Path) -> Result<Vec<R>, RunDirError> {
    let bytes = std::fs::read(path).map_err(|source| RunDirError::Read { path: path.to_path_buf(), source })?;
    parse_csv(&bytes, path)
}

/// [`read_csv`] of bytes already read (`path` names them in errors).
pub fn parse_csv<R: CsvRow>(bytes: &[u8], path: &Path) -> Result<Vec<R>, RunDirError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).trim(csv::Trim::All).from_reader(bytes);
    let mut records = reader.byte_records();
    let header_ok = matches!(records.next(), Some(Ok(h)) if h.iter().eq(R::HEADER.iter().map(|f| f.as_bytes())));
    if !header_ok {
        return Err(RunDirError::Header { path: path.to_path_buf(), what: R::WHAT });
    }
    let malformed = |line: u64, reason: String| RunDirError::MalformedRow { path: path.to_path_buf(), line, reason };
    let mut rows = vec![];
    let mut last_line = 1;
    for record in records {
        let record = record.map_err(|e| {
            let line = e.position().map_or(last_line + 1, |p| p.line());
            malformed(line, csv_reason(&e, R::HEADER))
        })?;
        let line = record.position().map_or(last_line + 1, |p| p.line());
        last_line = line;
        if let Some(i) = record.iter().position(non_finite) {
            let value = String::from_utf8_lossy(&record[i]).into_owned();
            return Err(malformed(line, format!("field '{}' is {value}, not a finite number", R::HEADER[i])));
        }
        let parsed: R::Record = record.deserialize(None).map_err(|e| malformed(line, csv_reason(&e, R::HEADER)))?;
        rows.push(R::from_record(parsed).map_err(|bad| malformed(line, bad.to_string()))?);
    }
    Ok(rows)
}

/// The reason of a `csv` error, naming the field by its header name.
fn csv_reason(e: &csv::Error, header: &[&str]) -> String {
    let name = |i: usize| header.get(i).map_or_else(|| format!("#{}", i + 1), |n| n.to_string());
    match e.kind() {
        csv::ErrorKind::UnequalLengths { len, .. } => format!("{len} fields, the header has {}", header.len()),
        csv::ErrorKind::Utf8 { err, .. } => format!("field '{}' is not UTF-8 text", name(err.field())),
        csv::ErrorKind::Deserialize { err, .. } => match (err.field(), err.kind()) {
            (Some(i), csv::DeserializeErrorKind::InvalidUtf8(_)) => {
                format!("field '{}' is not UTF-8 text", name(i as usize))
            }
            (Some(i), kind) => format!("field '{}': {kind}", name(i as usize)),
            (None, kind) => kind.to_string(),
        },
        _ => e.to_string(),
    }
}

/// The rows of a run in memory, and its result file rewritten whole after every addition.
#[derive(Debug)]
pub struct Sink<R> {
    path: PathBuf,
    rows: Vec<R>,
}

impl<R: CsvRow> Sink<R> {
    /// An empty sink; the file is first written by [`Sink::extend`].
    pub fn fresh(path: &Path) -> Sink<R> {
        Sink { path: path.to_path_buf(), rows: vec![] }
    }

    /// The rows already in `path` (none if it does not exist); a bad file is refused, untouched.
    pub fn resume(path: &Path) -> Result<Sink<R>, RunDirError> {
        let rows = if path.exists() { read_csv(path)? } else { vec![] };
        Ok(Sink { path: path.to_path_buf(), rows })
    }

    pub fn rows(&self) -> &[R] {
        &self.rows
    }

    pub fn into_rows(self) -> Vec<R> {
        self.rows
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `rows` and rewrites the file atomically.
    pub fn extend(&mut self, rows: impl IntoIterator<Item = R>) -> Result<(), RunDirError> {
        self.rows.extend(rows);
        self.flush()
    }

    /// Rewrites the file from the rows in memory.
    pub fn flush(&self) -> Result<(), RunDirError> {
        write_csv(&self.path, &self.rows)
    }
}

/// A shard of a sweep, `K/N` on the command line (`--shard 2/3`): the `K`-th of `N` disjoint
/// parts of the sweep's plan, `1 <= K <= N`. The plan is the list of units of work of the
/// unsharded run, in its order; unit `i` (0-based) belongs to shard `i mod N + 1`. Every unit's
/// numbers depend only on the settings and the unit, never on which units ran before it, so the
/// `N` shards together compute exactly the unsharded run's rows, which [`merge_rows`] puts back
/// in the plan's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// `K`, 1-based.
    pub index: usize,
    /// `N`, at least 1.
    pub count: usize,
}

/// Why a `K/N` shard argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid shard '{text}': {reason}")]
pub struct ShardError {
    /// The argument as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    /// `K/N` with `1 <= K <= N` (decimal integers, no spaces).
    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let err = |reason| ShardError { text: text.to_string(), reason };
        let (k, n) = text.split_once('/').ok_or_else(|| err("expected K/N, e.g. 2/3"))?;
        let number = |s: &str| {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("expected K/N with whole numbers K and N, e.g. 2/3"));
            }
            s.parse::<usize>().map_err(|_| err("the number is too large"))
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 {
            return Err(err("N must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(err("K must be between 1 and N"));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether unit `unit` (0-based index in the plan) belongs to this shard.
    pub fn owns(&self, unit: usize) -> bool {
        unit % self.count == self.index - 1
    }

    /// The units of `plan` that belong to this shard, in the plan's order.
    pub fn select<T>(&self, plan: Vec<T>) -> Vec<T> {
        plan.into_iter().enumerate().filter(|(i, _)| self.owns(*i)).map(|(_, u)| u).collect()
    }

    /// The units of `plan` that belong to `shard`, or all of them without one.
    pub fn select_opt<T>(shard: Option<Shard>, plan: Vec<T>) -> Vec<T> {
        match shard {
            Some(s) => s.select(plan),
            None => plan,
        }
    }
}

/// The field of a settings file that names the run's shard (absent in an unsharded run).
pub const SHARD_FIELD: &str = "shard";

/// `settings` with the shard recorded in [`SHARD_FIELD`] (unchanged without a shard, so an
/// unsharded run's settings file is what it was before shards existed).
pub fn with_shard(settings: Value, shard: Option<Shard>) -> Value {
    let mut settings = settings;
    if let (Some(shard), Some(fields)) = (shard, settings.as_object_mut()) {
        fields.insert(SHARD_FIELD.into(), Value::String(shard.to_string()));
    }
    settings
}

/// Why `jghm merge` refused its inputs; each variant names the folder(s) concerned.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("merge: no input folders")]
    NoInputs,
    #[error("merge: '{}' holds no run that can be merged (no {expected})", dir.display())]
    NoRun { dir: PathBuf, expected: String },
    #[error("merge: '{}' holds {found}, '{}' does not", has.display(), lacks.display())]
    DifferentRuns { has: PathBuf, lacks: PathBuf, found: String },
    #[error("merge: cannot read '{}'", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("merge: '{}' is not a JSON object", path.display())]
    Json { path: PathBuf },
    #[error("merge: '{}' is not a shard (its settings name no --shard)", path.display())]
    NotShard { path: PathBuf },
    #[error("merge: '{}': {source}", path.display())]
    BadShard { path: PathBuf, source: ShardError },
    #[error("merge: '{}' is shard {theirs} but '{}' is shard {ours}: the shards must split one sweep into the same N", theirs_dir.display(), ours_dir.display())]
    ForeignShard { theirs_dir: PathBuf, theirs: Shard, ours_dir: PathBuf, ours: Shard },
    #[error("merge: '{}' has other settings than '{}' ('{field}' differs)", theirs.display(), ours.display())]
    OtherSettings { theirs: PathBuf, ours: PathBuf, field: String },
    #[error("merge: shard {shard} is given twice ('{}' and '{}')", first.display(), second.display())]
    Duplicate { shard: Shard, first: PathBuf, second: PathBuf },
    #[error("merge: shard {shard} is missing (give all {} shards)", shard.count)]
    Missing { shard: Shard },
    #[error("merge: shard {shard} in '{}' is unfinished: {rows} of its {expected} {what} (finish it with --resume)", dir.display())]
    Unfinished { dir: PathBuf, shard: Shard, rows: usize, expected: usize, what: &'static str },
    #[error("merge: '{}' line {line}: the row does not belong to shard {shard} of this sweep", path.display())]
    ForeignRow { path: PathBuf, line: usize, shard: Shard },
    #[error("merge: the same folder '{}' is both an input and the output", dir.display())]
    OutIsInput { dir: PathBuf },
}

/// One input of a merge: a shard's folder, its shard, and its settings without the shard.
#[derive(Clone, Debug)]
pub struct ShardDir {
    /// The shard's folder.
    pub dir: PathBuf,
    /// The shard its settings file names.
    pub shard: Shard,
    /// Its settings without [`SHARD_FIELD`]: the unsharded run's settings.
    pub settings: Value,
}

/// Reads the settings file `settings_file` of every folder in `dirs` and checks that they are
/// the shards `1/N ..= N/N` of one sweep, each exactly once, with the same settings apart from
/// the shard. Returns them in shard order (the settings all equal the unsharded run's).
pub fn read_shards(dirs: &[PathBuf], settings_file: &str) -> Result<Vec<ShardDir>, MergeError> {
    let mut shards: Vec<ShardDir> = vec![];
    for dir in dirs {
        let path = dir.join(settings_file);
        let bytes = std::fs::read(&path).map_err(|source| MergeError::Read { path: path.clone(), source })?;
        let mut settings: Value =
            serde_json::from_slice(&bytes).map_err(|_| MergeError::Json { path: path.clone() })?;
        let fields = settings.as_object_mut().ok_or_else(|| MergeError::Json { path: path.clone() })?;
        let shard = match fields.remove(SHARD_FIELD) {
            Some(Value::String(text)) => {
                text.parse::<Shard>().map_err(|source| MergeError::BadShard { path: path.clone(), source })?
            }
            _ => return Err(MergeError::NotShard { path }),
        };
        if let Some(first) = shards.first() {
            if shard.count != first.shard.count {
                return Err(MergeError::ForeignShard {
                    theirs_dir: dir.clone(),
                    theirs: shard,
                    ours_dir: first.dir.clone(),
                    ours: first.shard,
                });
            }
            if let Some(field) = first_difference(&first.settings, &settings) {
                return Err(MergeError::OtherSettings { theirs: dir.clone(), ours: first.dir.clone(), field });
            }
            if let Some(twin) = shards.iter().find(|s| s.shard == shard) {
                return Err(MergeError::Duplicate { shard, first: twin.dir.clone(), second: dir.clone() });
            }
        }
        shards.push(ShardDir { dir: dir.clone(), shard, settings });
    }
    let Some(first) = shards.first() else { return Err(MergeError::NoInputs) };
    let count = first.shard.count;
    for index in 1..=count {
        if !shards.iter().any(|s| s.shard.index == index) {
            return Err(MergeError::Missing { shard: Shard { index, count } });
        }
    }
    shards.sort_by_key(|s| s.shard.index);
    Ok(shards)
}

/// The rows of every shard back in the unsharded run's order: `unit(shard, position, row)` is
/// the plan index of the unit that the `position`-th row of `shard`'s file belongs to (`None`:
/// no unit of the plan). A row of a unit that its shard does not own is refused; rows of one
/// unit keep their order. `shards` pairs each shard's folder and result file with its rows.
pub fn merge_rows<R>(
    shards: Vec<(Shard, PathBuf, Vec<R>)>,
    unit: impl Fn(Shard, usize, &R) -> Option<usize>,
) -> Result<Vec<R>, MergeError> {
    let mut keyed = vec![];
    for (shard, path, rows) in shards {
        for (position, row) in rows.into_iter().enumerate() {
            match unit(shard, position, &row) {
                Some(u) if shard.owns(u) => keyed.push((u, row)),
                _ => return Err(MergeError::ForeignRow { path, line: position + 2, shard }),
            }
        }
    }
    keyed.sort_by_key(|(u, _)| *u);
    Ok(keyed.into_iter().map(|(_, r)| r).collect())
}

/// Number formats of result files (`#[serde(serialize_with = ...)]`), kept from the files the
/// toolkit wrote before it used serde: `csv` writes floats by `ryu` (`1e-5`, `1.0`), these wrote
/// Rust's `Display` (`0.00001`, `1`) or `LowerExp` (`1e-5`, `1e0`). Both parse back exactly.
pub mod format {
    use serde::Serializer;
    use std::fmt::Display;

    /// Rust's `Display`: the shortest decimal that reads back to the same value, never an exponent.
    pub fn display<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// [`display`], or an empty field for `None`.
    pub fn display_opt<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    /// Rust's `LowerExp` (`{:e}`): the shortest mantissa that reads back, always an exponent.
    pub fn exponent<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, PartialEq)]
    struct Pt {
        name: String,
        x: f64,
        k: Option<usize>,
    }

    #[derive(Serialize, Deserialize)]
    struct PtRecord {
        name: String,
        #[serde(serialize_with = "format::display")]
        x: f64,
        k: Option<usize>,
    }

    impl CsvRow for Pt {
        type Record = PtRecord;
        const HEADER: &'static [&'static str] = &["name", "x", "k"];
        const WHAT: &'static str = "a test file";
        fn to_record(&self) -> PtRecord {
            PtRecord { name: self.name.clone(), x: self.x, k: self.k }
        }
        fn from_record(r: PtRecord) -> Result<Pt, BadField> {
            if r.name.is_empty() {
                return Err(BadField { field: "name", problem: "empty".into() });
            }
            Ok(Pt { name: r.name, x: r.x, k: r.k })
        }
    }

    fn parse(text: &str) -> Result<Vec<Pt>, String> {
        parse_csv::<Pt>(text.as_bytes(), Path::new("f.csv")).map_err(|e| e.to_string())
    }

    #[test]
    fn rows_round_trip_with_display_floats_and_empty_options() {
        let rows = vec![
            Pt { name: "a b".into(), x: 1e-7, k: None },
            Pt { name: "c".into(), x: 1.0, k: Some(3) },
            Pt { name: "d,e".into(), x: 0.1 + 0.2, k: Some(0) },
        ];
        let bytes = csv_bytes(&rows, Path::new("f.csv")).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text, "name,x,k\na b,0.0000001,\nc,1,3\n\"d,e\",0.30000000000000004,0\n");
        assert_eq!(parse(&text).unwrap(), rows);
    }

    #[test]
    fn bad_files_name_the_line_and_the_field() {
        for (text, expected) in [
            ("", "not a test file (unexpected header)"),
            ("name,y,k\n", "unexpected header"),
            ("name,x,k\na,1\n", "line 2: malformed row: 2 fields, the header has 3"),
            ("name,x,k\na,1,\nb,zz,1\n", "line 3: malformed row: field 'x'"),
            ("name,x,k\na,NaN,\n", "line 2: malformed row: field 'x' is NaN, not a finite number"),
            ("name,x,k\na,-inf,\n", "field 'x' is -inf"),
            ("name,x,k\n,1,\n", "line 2: malformed row: field 'name': empty"),
            ("name,x,k\na,1,-1\n", "line 2: malformed row: field 'k'"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(e.starts_with("'f.csv'"), "{e}");
        }
        let e = parse_csv::<Pt>(b"name,x,k\n\xff\xfe,1,\n", Path::new("f.csv")).unwrap_err().to_string();
        assert!(e.contains("line 2: malformed row: field 'name' is not UTF-8"), "{e}");
    }

    #[test]
    fn shards_parse_own_their_units_and_refuse_bad_arguments() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        assert_eq!(s.to_string(), "2/3");
        assert_eq!(s.select((0..8).collect()), vec![1, 4, 7]);
        let all: Vec<usize> = (1..=3).flat_map(|k| Shard { index: k, count: 3 }.select((0..8).collect())).collect();
        assert_eq!(all.len(), 8);
        assert_eq!("1/1".parse::<Shard>().unwrap().select(vec![5, 6]), vec![5, 6]);
        for bad in ["0/3", "4/3", "x", "3", "/3", "1/", "1/0", "-1/3", " 1/3", "1/3/3", "99999999999999999999/1"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid shard '{bad}'")), "{bad}: {e}");
        }
        assert_eq!(with_shard(json!({"a": 1}), Some(s)), json!({"a": 1, "shard": "2/3"}));
        assert_eq!(with_shard(json!({"a": 1}), None), json!({"a": 1}));
    }

    #[test]
    fn overlay_replaces_and_refuses_unknown_fields() {
        let mut base = json!({"a": 1, "b": {"c": 2, "d": 3}});
        overlay_json(&mut base, json!({"a": 5, "b": {"d": 4}}), NewFields::Refuse).unwrap();
        assert_eq!(base, json!({"a": 5, "b": {"c": 2, "d": 4}}));
        let e = overlay_json(&mut base, json!({"b": {"e": 1}}), NewFields::Refuse).unwrap_err();
        assert_eq!(e.to_string(), "unknown field 'b.e'");
        overlay_json(&mut base, json!({"b": {"e": 1}}), NewFields::Insert).unwrap();
        assert_eq!(base["b"]["e"], 1);
    }

    #[test]
    fn first_difference_names_the_nested_field() {
        let old = json!({"m": "x", "s": {"ns": [1, 2], "seed": 1}});
        assert_eq!(first_difference(&old, &old), None);
        assert_eq!(first_difference(&old, &json!({"m": "y", "s": {"ns": [1, 2], "seed": 1}})).unwrap(), "m");
        assert_eq!(first_difference(&old, &json!({"m": "x", "s": {"ns": [1], "seed": 1}})).unwrap(), "s.ns");
        assert_eq!(first_difference(&old, &json!({"m": "x"})).unwrap(), "s");
    }
}
