//! `overture cluster ...`: look at and change a running group through any node's HTTP API.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Cluster administration.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    /// Any node of the group.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080", env = "OVERTURE_URL")]
    url: String,
    /// With authentication on: an API key as `keyId:secret`, traded for a token first.
    #[arg(long, global = true, env = "OVERTURE_API_KEY", value_name = "KEY_ID:SECRET")]
    api_key: Option<String>,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ClusterCommand {
    /// Members, leader, term, commit and applied index, lag per follower.
    Status {
        /// Print the leader's status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a node as a learner (it receives the log but does not vote) and wait until it caught up.
    AddLearner {
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// The new node's API address (host:port).
        #[arg(long)]
        address: String,
    },
    /// Make a learner a voter.
    Promote {
        /// The learner's id.
        #[arg(long)]
        id: u64,
    },
    /// Remove a member from the group.
    Remove {
        /// The member's id.
        #[arg(long)]
        id: u64,
    },
    /// Back up the node at `--url` while it serves, into `<its data_dir>/backups/<name>`: it
    /// first catches up with every write acknowledged before the command, on any node.
    Backup {
        /// The backup's name (letters, digits, `.`, `_`, `-`); by default `backup-` and the time.
        #[arg(long)]
        name: Option<String>,
    },
}

fn base(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.contains("://") { url.to_owned() } else { format!("http://{url}") }
}

async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.context("the node's answer is not JSON")?;
    if !status.is_success() {
        bail!("{status}: {}", body["message"].as_str().unwrap_or("request failed"));
    }
    Ok(body)
}

/// How long a membership command keeps asking while the cluster answers 503 (an election, or
/// the leader handing over because it is the member being removed).
const CHANGE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Sends a membership change, again while the cluster answers a retryable 503: a change is
/// made again harmlessly, so a repeat finishes one that was cut off.
async fn changed(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let deadline = std::time::Instant::now() + CHANGE_PATIENCE;
    loop {
        let attempt = request.try_clone().context("the request cannot be repeated")?;
        let response = attempt.send().await?;
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE || std::time::Instant::now() >= deadline {
            return answer(response).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Runs a cluster command.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let url = base(&args.url);
    let client = client(&url, args.api_key.as_deref()).await?;
    match args.command {
        ClusterCommand::Status { json } => {
            let mine = answer(
                client
                    .get(format!("{url}/api/cluster/status"))
                    .send()
                    .await
                    .with_context(|| format!("reaching {url}"))?,
            )
            .await?;
            // Lag is known to the leader only: ask it when this node is not it.
            let leader_view = match mine["leaderAddress"].as_str() {
                Some(addr) if mine["state"] != "Leader" => {
                    answer(client.get(format!("{}/api/cluster/status", base(addr))).send().await?)
                        .await
                        .unwrap_or(mine.clone())
                }
                _ => mine.clone(),
            };
            if json {
                println!("{leader_view}");
            } else {
                print_status(&leader_view);
            }
        }
        ClusterCommand::AddLearner { id, address } => {
            let request =
                client.post(format!("{url}/api/cluster/learners")).json(&json!({"nodeId": id, "address": address}));
            print_status(&changed(request).await?);
        }
        ClusterCommand::Promote { id } => {
            print_status(
                &changed(client.post(format!("{url}/api/cluster/promote")).json(&json!({"nodeId": id}))).await?,
            );
        }
        ClusterCommand::Remove { id } => {
            print_status(&changed(client.delete(format!("{url}/api/cluster/members/{id}"))).await?);
        }
        ClusterCommand::Backup { name } => {
            let query =
                name.map(|n| format!("?name={}", form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()));
            let request = client.post(format!("{url}/api/admin/backup{}", query.unwrap_or_default()));
            let done = answer(request.send().await.with_context(|| format!("reaching {url}"))?).await?;
            println!("{}", serde_json::to_string_pretty(&done)?);
        }
    }
    Ok(())
}

/// An HTTP client, carrying a token for `api_key` if one is given.
async fn client(url: &str, api_key: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let Some(key) = api_key else { return Ok(overture_raft::http::client().build()?) };
    let (key_id, key_secret) = key.split_once(':').context("the API key must be keyId:secret")?;
    let r = overture_raft::http::client()
        .build()?
        .post(format!("{url}/api/token"))
        .json(&json!({"keyId": key_id, "keySecret": key_secret}))
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    let token = answer(r).await?["token"].as_str().context("no token in the answer")?.to_owned();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-authorization", token.parse().context("the token is not a header value")?);
    Ok(overture_raft::http::client().default_headers(headers).build()?)
}

fn print_status(s: &Value) {
    let leader = s["leader"].as_u64().map_or_else(|| "none".to_owned(), |l| l.to_string());
    println!(
        "leader {leader}  term {}  (as seen by node {}, {})",
        s["term"],
        s["nodeId"],
        s["state"].as_str().unwrap_or("?")
    );
    println!(
        "log: last {}  committed {}  applied {}  snapshot {}  purged {}",
        s["lastLogIndex"], s["commitIndex"], s["appliedIndex"], s["snapshotIndex"], s["purgedIndex"]
    );
    println!("{:<6} {:<24} {:<8} {:>10} {:>8}", "id", "address", "role", "matched", "lag");
    for m in s["members"].as_array().into_iter().flatten() {
        let id = m["id"].as_u64().unwrap_or_default();
        let role = if Some(id) == s["leader"].as_u64() {
            "leader"
        } else if m["voter"] == true {
            "voter"
        } else {
            "learner"
        };
        let f = &s["replication"][id.to_string()];
        let (matched, lag) = if f.is_object() {
            (f["matchedIndex"].to_string(), f["lag"].to_string())
        } else {
            ("-".into(), "-".into())
        };
        println!("{:<6} {:<24} {:<8} {:>10} {:>8}", id, m["address"].as_str().unwrap_or(""), role, matched, lag);
    }
    print_partitions(s);
}

/// Which node leads each partition, and how many each node leads.
fn print_partitions(s: &Value) {
    let groups: Vec<&Value> = s["groups"].as_array().into_iter().flatten().filter(|g| g["group"] != 0).collect();
    if groups.is_empty() {
        return;
    }
    let leader_of = |g: &Value| g["leader"].as_u64().map_or_else(|| "none".to_owned(), |l| l.to_string());
    println!("partitions {} (metadata group led by {})", groups.len(), s["leader"].as_u64().unwrap_or_default());
    println!("{:<10} {:<8} {:<10} {:>6}", "partition", "leader", "preferred", "term");
    for g in &groups {
        let preferred = g["preferredLeader"].as_u64().map_or_else(|| "-".to_owned(), |p| p.to_string());
        println!("{:<10} {:<8} {:<10} {:>6}", g["group"], leader_of(g), preferred, g["term"]);
    }
}
