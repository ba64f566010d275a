//! Prints `runsc list` as JSON: `cargo run -p runsc --example state [root]`.

use runsc::GlobalOpts;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = GlobalOpts::new();
    if let Some(root) = std::env::args().nth(1) {
        opts = opts.root(root);
    }
    let containers = opts.build().list().await?;
    println!("{}", serde_json::to_string_pretty(&containers)?);
    Ok(())
}
