//! Builds the offline base image once, by hand: `cargo run -p sebs-container --example
//! build_base_image [repository]` (default repository `sebs-local-test/base`, so that the
//! real `sebs-local/base` tags are left alone).

use sebs_container::BaseImageBuilder;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let repository = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sebs-local-test/base".to_string());
    let docker = match sebs_container::connect().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("failed to {e}");
            std::process::exit(1);
        }
    };
    let builder = BaseImageBuilder {
        repository,
        ..BaseImageBuilder::new()
    };
    match builder.build(&docker).await {
        Ok(built) => println!("{} {:?} in {:.1?}", built.id, built.tags, built.took),
        Err(e) => {
            eprintln!("failed to {e}");
            std::process::exit(1);
        }
    }
}
