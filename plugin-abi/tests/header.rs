//! Header drift test: C hosts compile against `include/mailext.h`, never
//! against the Rust, so the header must say exactly what `plugin_abi::layout`
//! says. A C program built from the header prints every size, offset and
//! constant; the header's structs are parsed for field names and order; and
//! every declaration is used from C and from C++ with warnings as errors.

use plugin_abi::layout::{constants, structs, DECLARATIONS};
use plugin_abi::MAILEXT_ENTRY_SYMBOL;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIX: &str = "update plugin-abi/include/mailext.h";

const C_FLAGS: &[&str] = &[
    "-x",
    "c",
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic-errors",
];
const CXX_FLAGS: &[&str] = &[
    "-x",
    "c++",
    "-std=c++11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic-errors",
];

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

fn header_text() -> String {
    let path = include_dir().join("mailext.h");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `$var` split into words (`CC="gcc -m64"` carries flags), or `default`.
fn compiler(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![default.to_string()])
}

struct Lang {
    label: &'static str,
    compiler: Vec<String>,
    flags: &'static [&'static str],
}

fn languages() -> [Lang; 2] {
    [
        Lang {
            label: "C",
            compiler: compiler("CC", "cc"),
            flags: C_FLAGS,
        },
        Lang {
            label: "C++",
            compiler: compiler("CXX", "g++"),
            flags: CXX_FLAGS,
        },
    ]
}

/// A scratch folder per test and process (tests run in parallel, and other
/// cargo runs may share the target dir), removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("header-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`; Err carries the command line and everything it printed.
fn run(mut cmd: Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{stdout}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Compiles one source file with `lang`'s flags; `-c` for an object.
fn compile(lang: &Lang, src: &Path, extra: &[&str], out: &Path) -> Result<(), String> {
    let mut cmd = Command::new(&lang.compiler[0]);
    cmd.args(&lang.compiler[1..])
        .args(lang.flags)
        .arg("-I")
        .arg(include_dir())
        .arg(src)
        .args(extra)
        .arg("-o")
        .arg(out);
    run(cmd).map(drop)
}

// ---- sizes, offsets and constants -------------------------------------

/// What Rust says, as (item, value); the C program prints "item value" lines.
fn rust_facts() -> Vec<(String, String)> {
    let mut facts = Vec::new();
    for (name, size, fields) in structs() {
        facts.push((format!("{name} size"), size.to_string()));
        for (field, offset) in &fields {
            facts.push((format!("{name}.{field} offset"), offset.to_string()));
        }
        // The ABI spells padding out as `_reserved` fields, so each field but
        // the last fills the span to the next one: this catches a narrower
        // C type that alignment would otherwise hide. (The last may be
        // followed by tail padding; the struct size covers it.)
        for pair in fields.windows(2) {
            let ((field, at), (_, next)) = (pair[0], pair[1]);
            facts.push((format!("{name}.{field} width"), (next - at).to_string()));
        }
    }
    for (name, value) in constants() {
        facts.push((format!("{name} value"), value.to_string()));
    }
    facts.push((
        "MAILEXT_ENTRY_SYMBOL value".into(),
        MAILEXT_ENTRY_SYMBOL.into(),
    ));
    facts
}

fn layout_program() -> String {
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"mailext.h\"\n\nint main(void) {\n",
    );
    for (name, _, fields) in structs() {
        c += &format!("  printf(\"%s %lu\\n\", \"{name} size\", (unsigned long)sizeof({name}));\n");
        for (f, _) in &fields {
            c += &format!(
                "  printf(\"%s %lu\\n\", \"{name}.{f} offset\", (unsigned long)offsetof({name}, {f}));\n"
            );
        }
        for (f, _) in fields.iter().take(fields.len().saturating_sub(1)) {
            c += &format!(
                "  printf(\"%s %lu\\n\", \"{name}.{f} width\", (unsigned long)sizeof((({name} *)0)->{f}));\n"
            );
        }
    }
    // #ifdef so a constant missing from the header is reported by name
    // rather than as a compile error.
    for (name, _) in constants() {
        c += &format!(
            "#ifdef {name}\n  printf(\"%s %lld\\n\", \"{name} value\", (long long)({name}));\n\
             #else\n  puts(\"{name} value <undefined>\");\n#endif\n"
        );
    }
    c += "#ifdef MAILEXT_ENTRY_SYMBOL\n  printf(\"%s %s\\n\", \"MAILEXT_ENTRY_SYMBOL value\", MAILEXT_ENTRY_SYMBOL);\n\
          #else\n  puts(\"MAILEXT_ENTRY_SYMBOL value <undefined>\");\n#endif\n";
    c += "  return 0;\n}\n";
    c
}

/// One "header drift" line per item whose value differs (or is absent).
fn drift(label: &str, printed: &str, rust: &[(String, String)]) -> Vec<String> {
    let c: HashMap<&str, &str> = printed.lines().filter_map(|l| l.rsplit_once(' ')).collect();
    rust.iter()
        .filter_map(|(item, r)| {
            let v = c.get(item.as_str()).copied().unwrap_or("<not printed>");
            (v != r).then(|| format!("header drift: {item} {label}={v} Rust={r} — {FIX}"))
        })
        .collect()
}

#[test]
fn sizes_offsets_and_constants_match_rust() {
    let dir = Scratch::new("layout");
    let src = dir.file("layout.c", &layout_program());
    let rust = rust_facts();
    let mut problems = Vec::new();
    for lang in languages() {
        let exe = dir.path(&format!("layout-{}", lang.label.replace('+', "x")));
        if let Err(e) = compile(&lang, &src, &[], &exe) {
            problems.push(format!(
                "header drift: the layout program does not compile as {} against mailext.h \
                 (a struct or field that layout.rs names is missing?) — {FIX}\n{e}",
                lang.label
            ));
            continue;
        }
        match run(Command::new(&exe)) {
            Ok(out) => {
                assert_eq!(
                    out.lines().count(),
                    rust.len(),
                    "the {} layout program printed an unexpected number of lines:\n{out}",
                    lang.label
                );
                problems.extend(drift(lang.label, &out, &rust));
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- field names and order --------------------------------------------

/// Removes /* */ and // comments and empties string literals, so neither
/// can pass for a declaration.
fn code_only(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, chars.peek()) {
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                out.push(' ');
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('"', _) => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push_str("\"\"");
            }
            _ => out.push(ch),
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Byte offsets where `word` occurs as a whole identifier.
fn word_positions(text: &str, word: &str) -> Vec<usize> {
    text.match_indices(word)
        .filter(|(at, _)| {
            let before = text[..*at].chars().next_back();
            let after = text[at + word.len()..].chars().next();
            !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
        })
        .map(|(at, _)| at)
        .collect()
}

/// Splits at commas outside parentheses (`int a, *b;` but not a parameter list).
fn top_level_commas(decl: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in decl.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&decl[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&decl[start..]);
    parts
}

/// The declared name: `(*name)(...)` for function pointers, else the last
/// identifier once array bounds and bit-field widths are dropped.
fn declarator_name(decl: &str) -> String {
    let name = if let Some(at) = decl.find("(*") {
        let rest = &decl[at + 2..];
        rest[..rest.find(')').unwrap_or(rest.len())].trim()
    } else {
        let d = decl.split(':').next().unwrap();
        let d = d.split('[').next().unwrap().trim_end();
        let start = d.rfind(|c: char| !is_ident(c)).map_or(0, |i| i + 1);
        &d[start..]
    };
    assert!(
        !name.is_empty() && name.chars().all(is_ident),
        "cannot read a field name from `{}` in mailext.h",
        decl.trim()
    );
    name.to_string()
}

/// Every `typedef struct Tag { ... } Name;` as (Name, Tag, [field names]).
fn typedef_structs(src: &str) -> Vec<(String, String, Vec<String>)> {
    let text = code_only(src);
    let mut found = Vec::new();
    for at in word_positions(&text, "typedef") {
        let rest = text[at + "typedef".len()..].trim_start();
        let Some(rest) = rest.strip_prefix("struct") else {
            continue;
        };
        let rest = rest.trim_start();
        let tag_len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let tag = rest[..tag_len].to_string();
        // `typedef struct X *P;` declares no body: nothing to compare.
        let Some(body) = rest[tag_len..].trim_start().strip_prefix('{') else {
            continue;
        };
        let end = body
            .find('}')
            .unwrap_or_else(|| panic!("unterminated struct {tag} in mailext.h"));
        assert!(
            !body[..end].contains('{'),
            "struct {tag} in mailext.h nests an aggregate; teach this test to read it"
        );
        let tail = &body[end + 1..];
        let alias = tail[..tail.find(';').unwrap_or(tail.len())]
            .trim()
            .to_string();
        let fields = body[..end]
            .split(';')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .flat_map(top_level_commas)
            .map(declarator_name)
            .collect();
        found.push((alias, tag, fields));
    }
    found
}

#[test]
fn the_parser_reads_what_the_header_may_contain() {
    let src = r#"
        /* typedef struct Fake { int x; } Fake; */
        typedef struct Fwd *FwdPtr;
        typedef struct A {
          uint32_t struct_size; // trailing
          const char *name, *other;
          int32_t (*cb)(void *ctx, const char *s,
                        size_t n);
          uint8_t pad[4];
          unsigned bits : 3;
        } A;
        #define TEXT "typedef struct Nope { int y; } Nope;"
    "#;
    let v = typedef_structs(src);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, "A");
    assert_eq!(v[0].1, "A");
    assert_eq!(
        v[0].2,
        ["struct_size", "name", "other", "cb", "pad", "bits"]
    );
}

#[test]
fn header_struct_fields_match_rust_by_name_and_order() {
    let header = typedef_structs(&header_text());
    let rust = structs();
    let mut problems = Vec::new();
    for (name, _, fields) in &rust {
        let want: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
        match header.iter().find(|(alias, _, _)| alias == name) {
            None => problems.push(format!(
                "header drift: struct {name} is not defined as `typedef struct {name} {{...}} {name};` — {FIX}"
            )),
            Some((_, tag, got)) => {
                if tag != name {
                    problems.push(format!(
                        "header drift: typedef {name} names struct tag `{tag}`, expected `{name}` — {FIX}"
                    ));
                }
                if *got != want {
                    let at = got.iter().zip(&want).take_while(|(g, w)| g == w).count();
                    problems.push(format!(
                        "header drift: {name} fields differ from field #{} on: C=[{}] Rust=[{}] — {FIX}",
                        at + 1,
                        got.join(", "),
                        want.join(", ")
                    ));
                }
            }
        }
    }
    for (alias, _, _) in &header {
        if !rust.iter().any(|(name, _, _)| name == alias) {
            problems.push(format!(
                "header drift: mailext.h defines struct {alias}, which layout.rs does not describe — \
                 remove it from the header or add it to plugin-abi/src/layout.rs"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- declarations, as C and as C++ ------------------------------------

/// `mailext_entry` -> `MailextEntryFn`: the typedef a function's pointer should have.
fn fn_typedef(function: &str) -> String {
    let mut t: String = function
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    t.push_str("Fn");
    t
}

fn is_function(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Uses every declaration; the header is included twice to exercise its guard.
fn declarations_program() -> String {
    let mut c = String::from("#include \"mailext.h\"\n#include \"mailext.h\"\n\n");
    for (i, name) in DECLARATIONS.iter().enumerate() {
        if !is_function(name) {
            c += &format!("typedef {name} declared_type_{i};\n");
        }
    }
    c += "\nint main(void) {\n";
    for name in DECLARATIONS.iter().filter(|n| is_function(n)) {
        let ty = fn_typedef(name);
        if DECLARATIONS.contains(&ty.as_str()) {
            // Assigning to the typedef proves declaration and typedef agree.
            c += &format!("  {ty} f_{name} = {name};\n  (void)f_{name};\n");
        } else {
            c += &format!("  (void)&{name};\n");
        }
    }
    c += "  return 0;\n}\n";
    c
}

/// Stand-ins for the plugin's functions so the programs link. They are bytes
/// in a file that never sees the header: the link only has to prove that the
/// C++ references are unmangled (`extern "C"`); nothing calls them.
fn stand_ins() -> String {
    DECLARATIONS
        .iter()
        .filter(|n| is_function(n))
        .map(|n| format!("char {n}[1];\n"))
        .collect()
}

#[test]
fn every_declaration_is_in_the_header() {
    let text = code_only(&header_text());
    let missing: Vec<&str> = DECLARATIONS
        .iter()
        .copied()
        .filter(|n| word_positions(&text, n).is_empty())
        .collect();
    assert!(
        missing.is_empty(),
        "header drift: {} not declared in mailext.h — {FIX}",
        missing.join(", ")
    );
}

#[test]
fn header_compiles_warning_free_as_c99_and_as_cxx_and_links_unmangled() {
    let dir = Scratch::new("decls");
    let src = dir.file("decls.c", &declarations_program());
    let stub_src = dir.file("stand_ins.c", &stand_ins());
    let [c, cxx] = languages();
    let stubs = dir.path("stand_ins.o");
    compile(&c, &stub_src, &["-c"], &stubs).unwrap();
    let mut problems = Vec::new();
    for lang in [c, cxx] {
        let tag = lang.label.replace('+', "x");
        let obj = dir.path(&format!("decls-{tag}.o"));
        if let Err(e) = compile(&lang, &src, &["-c"], &obj) {
            problems.push(format!(
                "header drift: mailext.h and its declarations ({}) do not compile cleanly as {} — {FIX}\n{e}",
                DECLARATIONS.join(", "),
                lang.label
            ));
            continue;
        }
        // Linked by the same driver without -x, so the objects are objects.
        let mut link = Command::new(&lang.compiler[0]);
        link.args(&lang.compiler[1..])
            .arg(&obj)
            .arg(&stubs)
            .arg("-o")
            .arg(dir.path(&format!("decls-{tag}")));
        if let Err(e) = run(link) {
            problems.push(format!(
                "header drift: {} code using mailext.h does not link against C symbols \
                 (missing extern \"C\"?) — {FIX}\n{e}",
                lang.label
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
