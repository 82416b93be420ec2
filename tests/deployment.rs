//! The deployment files, checked offline against the real binary's
//! configuration: `manifests/kubernetes/` and `docker/compose*.yaml`.
//!
//! No cluster and no Docker engine are needed. The files are parsed as YAML
//! and checked for what keeps the bot available and safe: at least two
//! replicas that stay up through rollouts and drains, probes on the port the
//! config really listens on, the image's unprivileged user on a read-only
//! root, secrets only from the Secret. The config the ConfigMap carries is
//! handed to [`Config::parse`] with the environment the pod would get (the
//! Deployment's variables, the Secret example's placeholders, the image's
//! `ENV`), so a key the binary does not know, or a secret nobody provides,
//! fails here rather than at a rollout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tempadmin::config::Config;
use yaml_rust2::{yaml::Hash, Yaml, YamlLoader};

/// The Kubernetes folder, relative to the repository root.
const K8S: &str = "manifests/kubernetes";
/// Files in [`K8S`] that are deliberately not applied by the kustomization.
const EXAMPLES: [&str; 2] = ["secret.example.yaml", "ingress.example.yaml"];

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The one YAML document in `rel`, with `<<` merge keys applied (compose
/// files share a replica's settings through an anchor).
fn load(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: expected one YAML document");
    merge_keys(docs.remove(0))
}

fn k8s(name: &str) -> Yaml {
    let doc = load(&format!("{K8S}/{name}"));
    assert!(
        doc["apiVersion"].as_str().is_some() && doc["kind"].as_str().is_some(),
        "{name}: no apiVersion or kind"
    );
    doc
}

fn merge_keys(doc: Yaml) -> Yaml {
    match doc {
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(merge_keys).collect()),
        Yaml::Hash(hash) => {
            let merge = Yaml::String("<<".into());
            let mut out = Hash::new();
            let mut inherited = Vec::new();
            for (k, v) in hash {
                if k == merge {
                    match v {
                        Yaml::Array(many) => inherited.extend(many),
                        one => inherited.push(one),
                    }
                } else {
                    out.insert(k, merge_keys(v));
                }
            }
            for base in inherited {
                let Yaml::Hash(base) = merge_keys(base) else {
                    panic!("a << merge key must name a mapping");
                };
                for (k, v) in base {
                    out.entry(k).or_insert(v);
                }
            }
            Yaml::Hash(out)
        }
        other => other,
    }
}

fn text(y: &Yaml, what: &str) -> String {
    match y {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Real(r) => r.clone(),
        other => panic!("{what}: expected a scalar, found {other:?}"),
    }
}

fn list<'a>(y: &'a Yaml, what: &str) -> &'a [Yaml] {
    y.as_vec()
        .unwrap_or_else(|| panic!("{what}: expected a list, found {y:?}"))
}

fn map<'a>(y: &'a Yaml, what: &str) -> &'a Hash {
    y.as_hash()
        .unwrap_or_else(|| panic!("{what}: expected a mapping, found {y:?}"))
}

/// A label mapping as plain strings.
fn labels(y: &Yaml, what: &str) -> HashMap<String, String> {
    map(y, what)
        .iter()
        .map(|(k, v)| (text(k, what), text(v, what)))
        .collect()
}

/// `selector` picks `pod` labels: every pair it asks for is there.
fn selects(selector: &HashMap<String, String>, pod: &HashMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// What the runtime stage of docker/Dockerfile sets up.
struct Image {
    /// `USER uid:gid`.
    uid: i64,
    gid: i64,
    /// `ENV` variables.
    env: HashMap<String, String>,
    /// `EXPOSE`.
    exposed: u16,
}

fn image() -> Image {
    let dockerfile = read("docker/Dockerfile");
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .expect("the Dockerfile has a runtime stage")
        .1
        .replace("\\\n", " ");
    let instruction = |name: &str| -> Vec<String> {
        runtime
            .lines()
            .filter_map(|l| l.strip_prefix(name))
            .map(str::to_string)
            .collect()
    };
    let user = instruction("USER ");
    let (uid, gid) = user
        .first()
        .and_then(|u| u.trim().split_once(':'))
        .expect("USER uid:gid in the runtime stage");
    let env = instruction("ENV ")
        .iter()
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    Image {
        uid: uid.parse().expect("numeric uid"),
        gid: gid.parse().expect("numeric gid"),
        env,
        exposed: instruction("EXPOSE ")[0]
            .trim()
            .parse()
            .expect("EXPOSE port"),
    }
}

/// The port of a `host:port` address.
fn port_of(address: &str) -> u16 {
    address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{address} has no port"))
}

/// The bot's container in the Deployment.
fn container(deployment: &Yaml) -> &Yaml {
    let containers = list(
        &deployment["spec"]["template"]["spec"]["containers"],
        "containers",
    );
    assert_eq!(containers.len(), 1, "one container, the bot");
    &containers[0]
}

/// A container port by name, or the number itself.
fn container_port(container: &Yaml, port: &Yaml) -> i64 {
    if let Some(n) = port.as_i64() {
        return n;
    }
    let name = text(port, "port");
    list(&container["ports"], "ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name.as_str()))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// A reference from the Deployment's environment into a Secret.
struct SecretRef {
    secret: String,
    key: String,
    optional: bool,
}

/// The Deployment's container environment: literal values, and references
/// into Secrets.
fn deployment_env(container: &Yaml) -> (HashMap<String, String>, HashMap<String, SecretRef>) {
    let (mut literal, mut secret) = (HashMap::new(), HashMap::new());
    for var in list(&container["env"], "env") {
        let name = text(&var["name"], "env name");
        if !var["value"].is_badvalue() {
            literal.insert(name, text(&var["value"], "env value"));
        } else {
            let r = &var["valueFrom"]["secretKeyRef"];
            assert!(!r.is_badvalue(), "{name}: neither a value nor a Secret");
            secret.insert(
                name,
                SecretRef {
                    secret: text(&r["name"], "secretKeyRef name"),
                    key: text(&r["key"], "secretKeyRef key"),
                    optional: r["optional"].as_bool().unwrap_or(false),
                },
            );
        }
    }
    (literal, secret)
}

/// The Secret example's `stringData`.
fn secret_example() -> (String, HashMap<String, String>) {
    let secret = k8s("secret.example.yaml");
    assert_eq!(secret["kind"].as_str(), Some("Secret"));
    (
        text(&secret["metadata"]["name"], "Secret name"),
        labels(&secret["stringData"], "stringData"),
    )
}

/// The config the pod would run with: the ConfigMap's file, the
/// Deployment's variables (secrets from the example), the image's `ENV`.
fn pod_config() -> Config {
    pod_config_with(|file| file.to_owned())
}

/// The config the pod would run with, its file changed by `edit` first.
fn pod_config_with(edit: impl Fn(&str) -> String) -> Config {
    let deployment = k8s("deployment.yaml");
    let (literal, refs) = deployment_env(container(&deployment));
    let (_, example) = secret_example();
    let mut env = image().env;
    env.extend(literal);
    for (name, r) in refs {
        if let Some(v) = example.get(&r.key) {
            env.insert(name, v.clone());
        }
    }
    let configmap = k8s("configmap.yaml");
    let file = edit(&text(&configmap["data"]["config.toml"], "config.toml"));
    Config::parse(&file, |name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("the ConfigMap's config.toml is refused: {e:#}"))
}

#[test]
fn the_kustomization_lists_every_manifest_that_exists_and_leaves_the_examples_out() {
    let kustomization = k8s("kustomization.yaml");
    let resources: Vec<String> = list(&kustomization["resources"], "resources")
        .iter()
        .map(|r| text(r, "resource"))
        .collect();
    for r in &resources {
        assert!(repo(&format!("{K8S}/{r}")).is_file(), "{r} does not exist");
        k8s(r);
    }
    for example in EXAMPLES {
        assert!(
            !resources.iter().any(|r| r == example),
            "{example} must not be applied"
        );
        k8s(example);
    }
    // A manifest added to the folder but not to the kustomization would
    // never be applied.
    for entry in std::fs::read_dir(repo(K8S)).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(
                resources.contains(&name) || EXAMPLES.contains(&name.as_str()),
                "{name} is neither in the kustomization nor an example"
            );
        }
    }
    let deployment = k8s("deployment.yaml");
    let images = list(&kustomization["images"], "images");
    assert!(
        images
            .iter()
            .any(|i| i["name"] == container(&deployment)["image"]),
        "the kustomization's images: must name the Deployment's image"
    );
}

#[test]
fn two_replicas_keep_serving_through_rollouts_and_drains() {
    let deployment = k8s("deployment.yaml");
    let spec = &deployment["spec"];
    let replicas = spec["replicas"].as_i64().expect("replicas");
    assert!(
        replicas >= 2,
        "replicas = {replicas}: one node's failure would stop the bot"
    );
    assert_eq!(spec["strategy"]["type"].as_str(), Some("RollingUpdate"));
    let unavailable = &spec["strategy"]["rollingUpdate"]["maxUnavailable"];
    assert!(
        unavailable.as_i64() == Some(0) || unavailable.as_str() == Some("0%"),
        "a rolling update must not take a replica away before its successor is ready"
    );
    let pod_labels = labels(&spec["template"]["metadata"]["labels"], "pod labels");
    let selector = labels(&spec["selector"]["matchLabels"], "Deployment selector");
    assert!(
        selects(&selector, &pod_labels),
        "the Deployment's selector misses its pods"
    );

    let pdb = k8s("poddisruptionbudget.yaml");
    let min = pdb["spec"]["minAvailable"].as_i64().expect("minAvailable");
    assert!(min >= 1, "a drain could take every replica");
    assert!(
        min < replicas,
        "minAvailable = {min} would block every node drain"
    );
    assert_eq!(
        labels(&pdb["spec"]["selector"]["matchLabels"], "PDB selector"),
        selector,
        "the PodDisruptionBudget must cover exactly the Deployment's pods"
    );

    let spread = list(
        &spec["template"]["spec"]["topologySpreadConstraints"],
        "topologySpreadConstraints",
    );
    let by_node = spread
        .iter()
        .find(|c| c["topologyKey"].as_str() == Some("kubernetes.io/hostname"))
        .expect("replicas spread across nodes");
    assert_eq!(by_node["whenUnsatisfiable"].as_str(), Some("DoNotSchedule"));
    assert!(selects(
        &labels(&by_node["labelSelector"]["matchLabels"], "spread selector"),
        &pod_labels
    ));
}

#[test]
fn probes_ask_healthz_and_readyz_on_the_port_the_config_listens_on() {
    let deployment = k8s("deployment.yaml");
    let c = container(&deployment);
    let config = pod_config();
    let listen = i64::from(port_of(&config.listen));
    assert_eq!(
        listen,
        i64::from(image().exposed),
        "the image EXPOSEs another port"
    );
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            container_port(c, &get["port"]),
            listen,
            "{probe} must ask the port that listen ({}) names",
            config.listen
        );
    }
    let metrics = config
        .metrics_listen
        .as_deref()
        .expect("metrics_listen keeps /metrics off the port the Ingress exposes");
    assert_eq!(
        container_port(c, &Yaml::String("metrics".into())),
        i64::from(port_of(metrics))
    );
}

#[test]
fn the_pod_runs_as_the_image_user_unprivileged_on_a_read_only_root() {
    let deployment = k8s("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let c = container(&deployment);
    let image = image();
    let (pod_sc, sc) = (&pod["securityContext"], &c["securityContext"]);
    // Set on the pod, the container or both; wherever it is set, it must
    // be right (the container's setting wins, the pod's still misleads).
    let both = |key: &str, expected: &Yaml| {
        let set: Vec<&Yaml> = [&pod_sc[key], &sc[key]]
            .into_iter()
            .filter(|v| !v.is_badvalue())
            .collect();
        assert!(!set.is_empty(), "securityContext.{key} is not set");
        for v in set {
            assert_eq!(v, expected, "securityContext.{key}");
        }
    };
    both("runAsNonRoot", &Yaml::Boolean(true));
    both("runAsUser", &Yaml::Integer(image.uid));
    both("runAsGroup", &Yaml::Integer(image.gid));
    let runtime_default = YamlLoader::load_from_str("type: RuntimeDefault").unwrap();
    both("seccompProfile", &runtime_default[0]);
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert!(
        list(&sc["capabilities"]["drop"], "capabilities.drop")
            .contains(&Yaml::String("ALL".into())),
        "every capability dropped"
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
}

#[test]
fn the_container_has_resource_requests_and_a_memory_limit() {
    let deployment = k8s("deployment.yaml");
    let resources = &container(&deployment)["resources"];
    for (kind, what) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        assert!(
            !text(&resources[kind][what], "resources").is_empty(),
            "resources.{kind}.{what}"
        );
    }
}

#[test]
fn termination_grace_outlasts_the_bots_own_shutdown() {
    let deployment = k8s("deployment.yaml");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    let pre_stop = list(
        &container(&deployment)["lifecycle"]["preStop"]["exec"]["command"],
        "preStop",
    );
    let pause: i64 = match pre_stop {
        [sleep, secs] if sleep.as_str() == Some("sleep") => {
            text(secs, "sleep").parse().expect("seconds")
        }
        other => panic!("preStop is not `sleep N`: {other:?}"),
    };
    let http = pod_config().http.shutdown_timeout.as_secs() as i64;
    // Counted one after the other, though they overlap: the margin is for
    // giving the leases back and closing the database.
    // How long the scheduler waits for work in flight after SIGTERM.
    let scheduler = tempadmin::engine::SHUTDOWN_GRACE.as_secs() as i64;
    let needed = pause + http + scheduler;
    assert!(
        grace > needed,
        "terminationGracePeriodSeconds = {grace}: the bot needs up to {needed}s to stop and give its leases back"
    );
}

#[test]
fn the_service_selects_the_pods_and_targets_their_named_http_port() {
    let deployment = k8s("deployment.yaml");
    let c = container(&deployment);
    let pod_labels = labels(
        &deployment["spec"]["template"]["metadata"]["labels"],
        "pod labels",
    );
    let service = k8s("service.yaml");
    assert!(selects(
        &labels(&service["spec"]["selector"], "Service selector"),
        &pod_labels
    ));
    let ports = list(&service["spec"]["ports"], "Service ports");
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("a Service port named http");
    assert_eq!(
        http["targetPort"].as_str(),
        Some("http"),
        "target the container port by name, so the number lives in one place"
    );
    for p in ports {
        container_port(c, &p["targetPort"]);
    }
    let listen = i64::from(port_of(&pod_config().listen));
    assert_eq!(container_port(c, &http["targetPort"]), listen);

    // The Ingress example sends Slack's and Teams' routes and the Teams
    // app's privacy and terms pages, and only those, to that Service port.
    let ingress = k8s("ingress.example.yaml");
    let mut paths = Vec::new();
    for rule in list(&ingress["spec"]["rules"], "rules") {
        for p in list(&rule["http"]["paths"], "paths") {
            let backend = &p["backend"]["service"];
            assert_eq!(backend["name"], service["metadata"]["name"]);
            assert_eq!(backend["port"]["name"].as_str(), Some("http"));
            paths.push(text(&p["path"], "path"));
        }
    }
    paths.sort();
    assert_eq!(
        paths,
        [
            "/privacy",
            "/slack/commands",
            "/slack/events",
            "/slack/interactions",
            "/teams/messages",
            "/terms"
        ]
    );
}

#[test]
fn the_configmap_config_is_accepted_by_the_real_parser_and_mounted_where_serve_reads_it() {
    let config = pod_config();
    assert!(
        config.database_url.starts_with("postgres://"),
        "replicas need PostgreSQL; the pod would run on {}",
        config.database_url
    );
    assert!(config.slack.is_some() || config.teams.is_some());

    let deployment = k8s("deployment.yaml");
    let c = container(&deployment);
    let args: Vec<String> = list(&c["args"], "args")
        .iter()
        .map(|a| text(a, "arg"))
        .collect();
    assert_eq!(args[0], "serve");
    let at = args.iter().position(|a| a == "--config").expect("--config");
    let file = Path::new(&args[at + 1]);
    let mount = list(&c["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str().map(Path::new) == file.parent())
        .expect("a volume mounted where --config points");
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    let volume = list(
        &deployment["spec"]["template"]["spec"]["volumes"],
        "volumes",
    )
    .iter()
    .find(|v| v["name"] == mount["name"])
    .expect("the mounted volume");
    let configmap = k8s("configmap.yaml");
    assert_eq!(
        volume["configMap"]["name"], configmap["metadata"]["name"],
        "the ConfigMap is what is mounted"
    );
    let file_name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        list(&volume["configMap"]["items"], "items")
            .iter()
            .any(|i| i["key"].as_str() == Some("config.toml")
                && i["path"].as_str() == Some(file_name)),
        "config.toml must appear as {}",
        file.display()
    );
}

#[test]
fn the_configmaps_teams_section_once_uncommented_names_its_tenant_and_is_accepted() {
    // Uncomment `#key = …` and `#[section]` lines, not prose (`# …`).
    let config = pod_config_with(|file| {
        file.lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect()
    });
    let teams = config.teams.expect("a [teams] section");
    assert!(
        teams.tenant_id.len() == 36 && teams.tenant_id.matches('-').count() == 4,
        "the example names a tenant GUID: {}",
        teams.tenant_id
    );
}

#[test]
fn the_database_password_and_every_secret_come_from_the_secret_not_the_configmap() {
    let deployment = k8s("deployment.yaml");
    let (literal, refs) = deployment_env(container(&deployment));
    let (secret_name, example) = secret_example();
    for name in [
        "DATABASE_URL",
        "JUMPCLOUD_API_KEY",
        "SLACK_SIGNING_SECRET",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "TEAMS_APP_PASSWORD",
        "JUMPCLOUD_ORG_ID",
    ] {
        assert!(
            !literal.contains_key(name),
            "{name} is written into the Deployment"
        );
        let r = refs
            .get(name)
            .unwrap_or_else(|| panic!("{name} does not come from the Secret"));
        assert_eq!(r.secret, secret_name, "{name}: another Secret");
        let value = example
            .get(&r.key)
            .unwrap_or_else(|| panic!("secret.example.yaml has no key {}", r.key));
        assert!(value.contains("REPLACE_ME"), "{}: not a placeholder", r.key);
    }
    for required in ["DATABASE_URL", "JUMPCLOUD_API_KEY"] {
        assert!(
            !refs[required].optional,
            "{required} is needed in every setup"
        );
    }

    let configmap = k8s("configmap.yaml");
    let file: toml::Table = text(&configmap["data"]["config.toml"], "config.toml")
        .parse()
        .expect("config.toml is TOML");
    if let Some(url) = file.get("database_url").and_then(|v| v.as_str()) {
        let url = url::Url::parse(url).expect("database_url is a URL");
        assert!(url.password().is_none(), "a password in the ConfigMap");
    }
    // Without DATABASE_URL the image's SQLite default would win, on a
    // read-only root and beside another replica.
    assert!(image().env["DATABASE_URL"].starts_with("sqlite:"));
    assert!(refs.contains_key("DATABASE_URL"));
}

/// `${NAME}`, `${NAME:?message}` and `${NAME:-default}` as Compose expands
/// them.
fn interpolate(value: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing }") + start;
        let inner = &rest[start + 2..end];
        let name = inner.split([':', '-', '?']).next().unwrap();
        let fallback = inner.split_once(":-").map(|(_, d)| d);
        match (vars.get(name), fallback) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => panic!("{name} is not set"),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Published ports `[ip:]host:container` of a compose service.
fn published(service: &Yaml, name: &str) -> Vec<(String, String, u16)> {
    if service["ports"].is_badvalue() {
        return Vec::new();
    }
    list(&service["ports"], "ports")
        .iter()
        .map(|p| {
            let p = text(p, "port");
            let parts: Vec<&str> = p.split(':').collect();
            let [ip, host, container] = parts[..] else {
                panic!("{name}: publish `{p}` as 127.0.0.1:HOST:CONTAINER");
            };
            (
                ip.to_string(),
                host.to_string(),
                container.parse().expect("container port"),
            )
        })
        .collect()
}

/// The services of a compose file that run the tempadmin image.
fn bots(compose: &Yaml) -> Vec<(String, &Yaml)> {
    map(&compose["services"], "services")
        .iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("tempadmin:"))
        })
        .map(|(n, s)| (text(n, "service"), s))
        .collect()
}

/// The variables a compose service's container starts with: `environment`
/// over `env_file` over the image's `ENV`. The env file's empty values stand
/// for the secrets the operator fills in.
fn compose_env(service: &Yaml, vars: &HashMap<&str, &str>) -> HashMap<String, String> {
    let mut env = image().env;
    if !service["env_file"].is_badvalue() {
        for file in list(&service["env_file"], "env_file") {
            let example = format!("docker/{}.example", text(file, "env_file"));
            for line in read(&example).lines() {
                if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
                    let v = if v.is_empty() { "filled-in" } else { v };
                    env.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    if !service["environment"].is_badvalue() {
        for (k, v) in map(&service["environment"], "environment") {
            env.insert(text(k, "variable"), interpolate(&text(v, "value"), vars));
        }
    }
    env
}

#[test]
fn the_sqlite_compose_file_stays_one_process_on_sqlite() {
    let compose = load("docker/compose.yaml");
    let bots = bots(&compose);
    assert_eq!(bots.len(), 1, "SQLite allows one process");
    let (name, bot) = &bots[0];
    let env = compose_env(bot, &HashMap::new());
    assert!(env["DATABASE_URL"].starts_with("sqlite:"), "{name}");
    let config = Config::parse(&read("docker/config.example.toml"), |n| env.get(n).cloned())
        .unwrap_or_else(|e| panic!("{e:#}"));
    for (ip, _, container) in published(bot, name) {
        assert_eq!(ip, "127.0.0.1");
        assert_eq!(container, port_of(&config.listen));
    }
}

#[test]
fn the_postgres_compose_file_runs_two_replicas_on_one_healthy_database() {
    let compose = load("docker/compose.postgres.yaml");
    let services = map(&compose["services"], "services");
    let bots = bots(&compose);
    assert!(bots.len() >= 2, "{} bot replica(s)", bots.len());

    let (pg_name, pg) = services
        .iter()
        .find(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("postgres:"))
        })
        .map(|(n, s)| (text(n, "service"), s))
        .expect("a PostgreSQL service");
    let pg_image = text(&pg["image"], "image");
    let digest = pg_image
        .split_once("@sha256:")
        .map(|(_, d)| d)
        .unwrap_or("");
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{pg_image}: pin the image by digest"
    );
    let check: Vec<String> = list(&pg["healthcheck"]["test"], "healthcheck")
        .iter()
        .map(|t| text(t, "healthcheck"))
        .collect();
    assert!(check.iter().any(|t| t.contains("pg_isready")), "{check:?}");
    assert!(
        published(pg, &pg_name).is_empty(),
        "PostgreSQL published on the host"
    );
    let pg_env = labels(&pg["environment"], "postgres environment");
    assert!(
        pg_env["POSTGRES_PASSWORD"].starts_with("${POSTGRES_PASSWORD"),
        "the password comes from the environment, not this file"
    );

    let vars = HashMap::from([("POSTGRES_PASSWORD", "0123abcd")]);
    let mut urls = Vec::new();
    let mut host_ports = Vec::new();
    for (name, bot) in &bots {
        assert_eq!(
            bot["depends_on"][pg_name.as_str()]["condition"].as_str(),
            Some("service_healthy"),
            "{name} must wait for a healthy database"
        );
        let raw = text(&bot["environment"]["DATABASE_URL"], "DATABASE_URL");
        assert!(
            raw.contains("${POSTGRES_PASSWORD"),
            "{name}: a literal password"
        );
        let env = compose_env(bot, &vars);
        let config = Config::parse(&read("docker/config.postgres.example.toml"), |n| {
            env.get(n).cloned()
        })
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let url = url::Url::parse(&config.database_url).expect("a URL");
        assert_eq!(url.scheme(), "postgres", "{name}");
        assert_eq!(url.host_str(), Some(pg_name.as_str()), "{name}");
        urls.push(config.database_url.clone());
        let ports = published(bot, name);
        assert!(!ports.is_empty(), "{name} is not reachable from the proxy");
        for (ip, host, container) in ports {
            assert_eq!(ip, "127.0.0.1", "{name}: plain HTTP beyond this host");
            assert_eq!(container, port_of(&config.listen), "{name}");
            host_ports.push(host);
        }
    }
    urls.dedup();
    assert_eq!(urls.len(), 1, "the replicas must share one database");
    let all = host_ports.len();
    host_ports.sort();
    host_ports.dedup();
    assert_eq!(host_ports.len(), all, "two replicas on one host port");
}

#[test]
fn the_slack_manifest_asks_only_for_the_scopes_the_bot_uses() {
    let manifest = load("manifests/slack-app.yaml");
    let mut scopes: Vec<String> = list(&manifest["oauth_config"]["scopes"]["bot"], "scopes")
        .iter()
        .map(|s| text(s, "scope"))
        .collect();
    scopes.sort();
    // commands: /tempadmin; chat:write: chat.postMessage (also direct
    // messages, with a user id as the channel) and chat.update; users:read
    // and users:read.email: users.info and bots.info; usergroups:read:
    // usergroups.users.list; channels:read and groups:read:
    // conversations.info of the approvals channel (`tempadmin check`).
    // Nothing calls conversations.open (im:write).
    assert_eq!(
        scopes,
        [
            "channels:read",
            "chat:write",
            "commands",
            "groups:read",
            "usergroups:read",
            "users:read",
            "users:read.email"
        ]
    );
    // The simulator grants exactly the manifest's scopes, so a method the
    // bot calls without its scope fails in the tests as it would in Slack.
    let mut simulated: Vec<&str> = tempadmin::sim::slack::SCOPES.to_vec();
    simulated.sort();
    assert_eq!(scopes, simulated);
}

#[test]
fn the_slack_manifest_enables_the_home_tab_and_subscribes_to_its_event_on_the_events_route() {
    let manifest = load("manifests/slack-app.yaml");
    assert_eq!(
        manifest["features"]["app_home"]["home_tab_enabled"].as_bool(),
        Some(true)
    );
    let events = &manifest["settings"]["event_subscriptions"];
    let url = text(&events["request_url"], "request_url");
    assert!(
        url.starts_with("https://") && url.ends_with("/slack/events"),
        "{url}"
    );
    let bot_events: Vec<String> = list(&events["bot_events"], "bot_events")
        .iter()
        .map(|e| text(e, "event"))
        .collect();
    assert_eq!(bot_events, ["app_home_opened"]);
}

#[test]
fn the_socket_mode_manifest_matches_the_http_one_without_any_url() {
    let http = load("manifests/slack-app.yaml");
    let socket = load("manifests/slack-app-socket.yaml");
    let scopes = |m: &Yaml| {
        let mut s: Vec<String> = list(&m["oauth_config"]["scopes"]["bot"], "scopes")
            .iter()
            .map(|s| text(s, "scope"))
            .collect();
        s.sort();
        s
    };
    assert_eq!(scopes(&socket), scopes(&http), "the same scopes");
    let commands = |m: &Yaml| -> Vec<[String; 3]> {
        list(&m["features"]["slash_commands"], "slash_commands")
            .iter()
            .map(|c| ["command", "description", "usage_hint"].map(|k| text(&c[k], k)))
            .collect()
    };
    assert_eq!(commands(&socket), commands(&http), "the same command");
    assert_eq!(socket["display_information"], http["display_information"]);
    for feature in ["app_home", "bot_user"] {
        assert_eq!(
            socket["features"][feature], http["features"][feature],
            "{feature}"
        );
    }
    assert_eq!(
        socket["settings"]["socket_mode_enabled"],
        Yaml::Boolean(true)
    );
    assert_eq!(
        http["settings"]["socket_mode_enabled"],
        Yaml::Boolean(false)
    );
    assert_eq!(
        socket["settings"]["interactivity"]["is_enabled"],
        Yaml::Boolean(true),
        "clicks arrive over the socket"
    );
    // Socket Mode has no request URLs: Slack would post to them instead.
    let text = read("manifests/slack-app-socket.yaml");
    let urls: Vec<&str> = text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.contains("url:") || l.contains("https://"))
        .collect();
    assert!(urls.is_empty(), "{urls:?}");
}

/// A NetworkPolicy peer (`from` or `to` entry): its selectors' labels, by
/// kind, and whether it is an address block.
struct Peer {
    namespaces: HashMap<String, String>,
    pods: HashMap<String, String>,
    ip_block: bool,
}

fn peers(rule: &Yaml, key: &str) -> Vec<Peer> {
    if rule[key].is_badvalue() {
        return Vec::new();
    }
    list(&rule[key], key)
        .iter()
        .map(|p| {
            let selector = |kind: &str| {
                if p[kind].is_badvalue() {
                    HashMap::new()
                } else {
                    labels(&p[kind]["matchLabels"], kind)
                }
            };
            Peer {
                namespaces: selector("namespaceSelector"),
                pods: selector("podSelector"),
                ip_block: !p["ipBlock"].is_badvalue(),
            }
        })
        .collect()
}

/// The port numbers a NetworkPolicy rule names (names resolved against the
/// container, which fails for a name the container does not have).
fn rule_ports(container: &Yaml, rule: &Yaml) -> Vec<i64> {
    list(&rule["ports"], "a rule without ports opens every port")
        .iter()
        .map(|p| container_port(container, &p["port"]))
        .collect()
}

#[test]
fn the_network_policy_admits_only_the_ingress_controller_and_the_scraper_each_on_its_port() {
    let policy = k8s("networkpolicy.yaml");
    let deployment = k8s("deployment.yaml");
    let c = container(&deployment);
    let pod_labels = labels(
        &deployment["spec"]["template"]["metadata"]["labels"],
        "pod labels",
    );
    let spec = &policy["spec"];
    assert!(selects(
        &labels(&spec["podSelector"]["matchLabels"], "policy selector"),
        &pod_labels
    ));
    let types: Vec<String> = list(&spec["policyTypes"], "policyTypes")
        .iter()
        .map(|t| text(t, "policyType"))
        .collect();
    assert!(types.contains(&"Ingress".into()) && types.contains(&"Egress".into()));

    let config = pod_config();
    let app_port = i64::from(port_of(&config.listen));
    let metrics_port = i64::from(port_of(
        config
            .metrics_listen
            .as_deref()
            .expect("metrics_listen: /metrics on a port of its own"),
    ));
    let rules = list(&spec["ingress"], "ingress");
    let mut sources = Vec::new();
    for port in [app_port, metrics_port] {
        let admitting: Vec<&Yaml> = rules
            .iter()
            .filter(|r| rule_ports(c, r).contains(&port))
            .collect();
        assert_eq!(admitting.len(), 1, "port {port}: one rule admits it");
        assert_eq!(
            rule_ports(c, admitting[0]),
            [port],
            "the app port and the metrics port each have a rule, and a source, of their own"
        );
        let from = peers(admitting[0], "from");
        assert_eq!(from.len(), 1, "port {port}: one source");
        let source = &from[0];
        assert!(
            !source.ip_block && !source.namespaces.is_empty(),
            "port {port}: admit a namespace by its labels, not addresses or anybody"
        );
        sources.push(source.namespaces.clone());
    }
    assert_ne!(
        sources[0], sources[1],
        "the Ingress controller and the scraper are told apart"
    );
    for rule in rules {
        assert!(
            !peers(rule, "from").is_empty(),
            "an ingress rule without `from` admits anybody: {rule:?}"
        );
    }
}

#[test]
fn the_network_policy_reaches_postgresql_only_on_the_database_pods() {
    let policy = k8s("networkpolicy.yaml");
    let deployment = k8s("deployment.yaml");
    let c = container(&deployment);
    let (_, example) = secret_example();
    let database = url::Url::parse(&example["DATABASE_URL"]).expect("DATABASE_URL is a URL");
    let database_port = i64::from(database.port().unwrap_or(5432));
    let rules = list(&policy["spec"]["egress"], "egress");
    let to_database: Vec<&Yaml> = rules
        .iter()
        .filter(|r| rule_ports(c, r).contains(&database_port))
        .collect();
    assert_eq!(to_database.len(), 1, "one rule for PostgreSQL");
    let to = peers(to_database[0], "to");
    assert_eq!(to.len(), 1, "one destination: the database");
    assert!(
        !to[0].ip_block && !to[0].namespaces.is_empty() && !to[0].pods.is_empty(),
        "PostgreSQL's pods in PostgreSQL's namespace, both selected in one entry"
    );
    // Anywhere only for DNS and HTTPS, whose servers are outside the
    // cluster or have addresses that change.
    for rule in rules {
        if peers(rule, "to").is_empty() {
            for port in rule_ports(c, rule) {
                assert!(
                    port == 53 || port == 443,
                    "port {port} is open to every address"
                );
            }
        }
    }
}

#[test]
fn every_label_the_network_policy_asks_of_other_namespaces_is_documented() {
    let policy = k8s("networkpolicy.yaml");
    let manifest = read(&format!("{K8S}/networkpolicy.yaml"));
    let install = read("docs/INSTALL.md");
    let spec = &policy["spec"];
    let rules = list(&spec["ingress"], "ingress")
        .iter()
        .map(|r| peers(r, "from"))
        .chain(
            list(&spec["egress"], "egress")
                .iter()
                .map(|r| peers(r, "to")),
        );
    let mut seen = 0;
    for peer in rules.flatten() {
        for (k, v) in peer.namespaces.iter().chain(&peer.pods) {
            let label = format!("{k}: {v}");
            // In the comment at the top, not only in the rule itself.
            assert!(
                manifest.matches(&label).count() >= 2,
                "networkpolicy.yaml's comments do not list `{label}` among the labels to adapt"
            );
            assert!(
                install.contains(&label),
                "docs/INSTALL.md does not tell the operator to adapt `{label}`"
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 3,
        "the policy names the ingress, monitoring and database peers"
    );
}
