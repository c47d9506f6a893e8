//! Replays a vector file through the model and prints the results in the
//! vector format: `cargo run -p qsock-core --example replay -- FILE`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: replay FILE.vec");
        std::process::exit(2);
    };
    let result = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| qsock::model::trace::parse(&text).map_err(|e| e.to_string()))
        .and_then(|trace| qsock::model::trace::run(&trace).map_err(|e| e.to_string()));
    match result {
        Ok(outcome) => {
            for line in outcome.lines() {
                println!("{line}");
            }
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}
