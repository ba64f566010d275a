//! The images critest v1.37.0 pulls, built locally from the host's static
//! busybox and a few small static C programs, under the exact names critest
//! asks for (served by [`super::registry`]). What each spec needs of them:
//!
//! - `e2e-test-images/busybox:1.29-2`, critest's default container image:
//!   every busybox applet, plus `pgrep` (a script) and `ipcs` (C), which
//!   Debian's busybox-static lacks; `/etc/passwd` with `nobody` and
//!   `www-data` as in the real image.
//! - `e2e-test-images/nginx:1.14-2` and `k8s-staging-cri-tools/hostnet-nginx-amd64`:
//!   HTTP 200 on :80 (:12003 for hostnet), a process named `nginx` whose
//!   command line says "master process", `/var/run/nginx.pid`.
//! - `e2e-test-images/httpd:2.4.39-4`: HTTP on :80, "httpd" in its log.
//! - `e2e-test-images/nonewprivs:1.3`: CMD `nnp`, setuid root, printing
//!   `Effective uid: N`.
//! - the `test-image-*` family: busybox images that differ (their own
//!   marker file, so their own config digest and image id) or share one
//!   manifest where critest expects one image under several tags; the user
//!   images' `USER`; `test-image-predefined-group`'s `/etc/group`.
//! - `registry.k8s.io/pause:3.9` and `k8s.gcr.io/pause:3.9`: one manifest.
//! - [`SANDBOX_REF`], the pods' own pause image.
//!
//! `test-image-digest@sha256:9700f9...` names a manifest on gcr.io whose
//! bytes cannot be rebuilt here: that spec is skipped (see the expected
//! failures list).

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use test_support::image::sha256_hex;

use super::rootfs::{busybox_rootfs, err, install, run, script, GROUP, HELPERS, PASSWD};

/// Registry content: blobs (configs, layers, manifests) by digest and the
/// tags that name manifests.
#[derive(Debug, Default)]
pub struct Content {
    /// `sha256:<hex>` to bytes (configs, layers and manifests).
    pub blobs: HashMap<String, Vec<u8>>,
    /// Which of the blobs are manifests.
    pub manifests: HashSet<String>,
    /// (repository with its registry host, tag) to a manifest digest.
    pub tags: HashMap<(String, String), String>,
}

impl Content {
    /// The manifest digest `reference` (`host/path:tag`) names.
    pub fn resolve(&self, reference: &str) -> Option<&String> {
        let (repo, tag) = split_reference(reference);
        self.tags.get(&(repo.to_string(), tag.to_string()))
    }
}

/// `host/path:tag` to (`host/path`, `tag`), `latest` when untagged.
fn split_reference(reference: &str) -> (&str, &str) {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    }
}

const E2E: &str = "registry.k8s.io/e2e-test-images/";
const CRI_TOOLS: &str = "gcr.io/k8s-staging-cri-tools/";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image's runtime configuration.
#[derive(Default)]
struct Config<'a> {
    entrypoint: &'a [&'a str],
    cmd: &'a [&'a str],
    user: &'a str,
    env: &'a [&'a str],
}

/// A layer as the manifest and the config name it (uncompressed tar, so
/// its digest is its diff id).
#[derive(Clone)]
struct Layer {
    digest: String,
    size: usize,
}

struct Builder {
    work: PathBuf,
    content: Content,
    n: usize,
}

/// Builds every image critest pulls in `work` (a scratch directory the
/// caller removes) and returns the registry content.
pub fn build(work: &Path) -> Result<Content, String> {
    let mut b = Builder {
        work: work.to_path_buf(),
        content: Content::default(),
        n: 0,
    };
    let helpers = b.compile_helpers()?;
    let base = b.layer(|root| busybox_rootfs(root, &helpers))?;

    // critest's default container image.
    let busybox = b.image(
        &[&base],
        "busybox",
        &Config {
            cmd: &["sh"],
            ..Config::default()
        },
    )?;
    b.tag(&format!("{E2E}busybox:1.29-2"), &busybox);

    let nginx = b.layer(|root| {
        install(&helpers.join("nginx"), &root.join("usr/sbin/nginx"), 0o755)?;
        fs::create_dir_all(root.join("var/run")).map_err(err("mkdir var/run"))
    })?;
    let web = b.image(
        &[&base, &nginx],
        "nginx",
        &Config {
            cmd: &["nginx", "-g", "daemon off;"],
            ..Config::default()
        },
    )?;
    b.tag(&format!("{E2E}nginx:1.14-2"), &web);
    let hostnet = b.image(
        &[&base, &nginx],
        "hostnet-nginx",
        &Config {
            cmd: &["nginx", "-g", "daemon off;"],
            env: &["NGINX_PORT=12003"],
            ..Config::default()
        },
    )?;
    b.tag(&format!("{CRI_TOOLS}hostnet-nginx-amd64:latest"), &hostnet);

    let httpd = b.layer(|root| {
        let docs = root.join("usr/local/apache2/htdocs");
        fs::create_dir_all(&docs).map_err(err("mkdir htdocs"))?;
        fs::write(
            docs.join("index.html"),
            "<html><body><h1>It works!</h1></body></html>\n",
        )
        .map_err(err("write index.html"))?;
        script(
            &root.join("usr/local/bin/httpd-foreground"),
            "#!/bin/sh\necho \"httpd: serving /usr/local/apache2/htdocs on port 80\"\n\
             exec /bin/httpd -f -p 80 -h /usr/local/apache2/htdocs\n",
        )
    })?;
    let httpd = b.image(
        &[&base, &httpd],
        "httpd",
        &Config {
            cmd: &["httpd-foreground"],
            ..Config::default()
        },
    )?;
    b.tag(&format!("{E2E}httpd:2.4.39-4"), &httpd);

    let nnp = b.layer(|root| {
        install(
            &helpers.join("nnp"),
            &root.join("usr/local/bin/nnp"),
            0o4755,
        )
    })?;
    let nnp = b.image(
        &[&base, &nnp],
        "nonewprivs",
        &Config {
            cmd: &["nnp"],
            ..Config::default()
        },
    )?;
    b.tag(&format!("{E2E}nonewprivs:1.3"), &nnp);

    // Images whose USER critest reads back from ImageStatus.
    for (name, user) in [
        ("test-image-user-uid", "1002"),
        ("test-image-user-username", "www-data"),
        ("test-image-user-uid-group", "1003:1004"),
        ("test-image-user-username-group", "www-data:1004"),
    ] {
        let d = b.marked(
            &base,
            name,
            &Config {
                cmd: &["sh"],
                user,
                ..Config::default()
            },
        )?;
        b.tag(&format!("{CRI_TOOLS}{name}:latest"), &d);
    }

    // default-user (1000) belongs to group-defined-in-image (50000).
    let group = b.layer(|root| {
        fs::create_dir_all(root.join("etc")).map_err(err("mkdir etc"))?;
        fs::create_dir_all(root.join("home/default-user")).map_err(err("mkdir home"))?;
        fs::write(
            root.join("etc/passwd"),
            format!("{PASSWD}default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"),
        )
        .map_err(err("write passwd"))?;
        fs::write(
            root.join("etc/group"),
            format!("{GROUP}default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"),
        )
        .map_err(err("write group"))
    })?;
    let group = b.image(
        &[&base, &group],
        "predefined-group",
        &Config {
            cmd: &["sh"],
            user: "1000",
            ..Config::default()
        },
    )?;
    b.tag(
        &format!("{CRI_TOOLS}test-image-predefined-group:latest"),
        &group,
    );

    // Distinct images under distinct names (each its own image id).
    for reference in [
        "test-image-latest:latest",
        "test-image-tag:test",
        "test-image-tag:all",
        "test-image-1:latest",
        "test-image-2:latest",
        "test-image-3:latest",
    ] {
        let d = b.marked(
            &base,
            reference,
            &Config {
                cmd: &["sh", "-c", "top"],
                ..Config::default()
            },
        )?;
        b.tag(&format!("{CRI_TOOLS}{reference}"), &d);
    }
    // One image under three tags.
    let tags = b.marked(
        &base,
        "test-image-tags",
        &Config {
            cmd: &["sh", "-c", "top"],
            ..Config::default()
        },
    )?;
    for t in ["1", "2", "3"] {
        b.tag(&format!("{CRI_TOOLS}test-image-tags:{t}"), &tags);
    }

    // One pause image from two registries.
    let pause = b.layer(|root| install(&helpers.join("pause"), &root.join("pause"), 0o755))?;
    let pause = b.image(
        &[&base, &pause],
        "pause",
        &Config {
            entrypoint: &["/pause"],
            ..Config::default()
        },
    )?;
    b.tag("registry.k8s.io/pause:3.9", &pause);
    b.tag("k8s.gcr.io/pause:3.9", &pause);

    // The pods' own pause image: a process named `pause` as the pod's PID 1
    // (critest's containers share the pod's PID namespace, and
    // `pgrep sleep` must not find it), an image id of its own (critest
    // removes registry.k8s.io/pause:3.9 by id).
    let sandbox = b.layer(|root| {
        install(&helpers.join("pause"), &root.join("pause"), 0o755)?;
        fs::write(root.join("critest-sandbox"), "critest-sandbox\n").map_err(err("write marker"))
    })?;
    let sandbox = b.image(
        &[&base, &sandbox],
        "critest-sandbox",
        &Config {
            entrypoint: &["/pause"],
            ..Config::default()
        },
    )?;
    b.tag(SANDBOX_REF, &sandbox);

    Ok(b.content)
}

impl Builder {
    /// Compiles the C helpers (static, so they run on busybox's bare root).
    fn compile_helpers(&mut self) -> Result<PathBuf, String> {
        let dir = self.work.join("helpers");
        fs::create_dir_all(&dir).map_err(err("mkdir helpers"))?;
        for (name, source) in HELPERS {
            let src = dir.join(format!("{name}.c"));
            fs::write(&src, source).map_err(err("write helper source"))?;
            run(Command::new("cc")
                .args(["-static", "-Os", "-s", "-o"])
                .arg(dir.join(name))
                .arg(&src))
            .map_err(|e| {
                format!("{e}\n(the critest images need a C compiler with a static libc: gcc, libc6-dev)")
            })?;
        }
        Ok(dir)
    }

    /// A layer of the files `fill` writes into an empty directory.
    fn layer(&mut self, fill: impl FnOnce(&Path) -> Result<(), String>) -> Result<Layer, String> {
        self.n += 1;
        let root = self.work.join(format!("layer-{}", self.n));
        fs::create_dir_all(&root).map_err(err("mkdir layer"))?;
        fill(&root)?;
        let tar = self.work.join(format!("layer-{}.tar", self.n));
        test_support::image::layer_tar(&root, &tar).map_err(err("pack layer"))?;
        let data = fs::read(&tar).map_err(err("read layer"))?;
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_file(&tar);
        let size = data.len();
        let digest = self.blob(data);
        Ok(Layer { digest, size })
    }

    /// A busybox image with its own marker file `/<name>` (as cri-tools'
    /// `image-test` Dockerfile adds), so its own image id.
    fn marked(&mut self, base: &Layer, name: &str, config: &Config) -> Result<String, String> {
        let marker = name.replace([':', '/'], "-");
        let layer = self.layer(|root| {
            fs::write(root.join(&marker), format!("{name}\n")).map_err(err("write marker"))
        })?;
        self.image(&[base, &layer], name, config)
    }

    fn blob(&mut self, data: Vec<u8>) -> String {
        let digest = format!("sha256:{}", sha256_hex(&data));
        self.content.blobs.insert(digest.clone(), data);
        digest
    }

    /// An image of `layers` with `config`; returns its manifest's digest.
    fn image(&mut self, layers: &[&Layer], name: &str, c: &Config) -> Result<String, String> {
        let mut env = vec![PATH_ENV];
        env.extend_from_slice(c.env);
        let mut config = serde_json::json!({
            "Env": env,
            "WorkingDir": "/",
            "Labels": {"io.runsc-shim.critest.image": name},
        });
        if !c.cmd.is_empty() {
            config["Cmd"] = serde_json::json!(c.cmd);
        }
        if !c.entrypoint.is_empty() {
            config["Entrypoint"] = serde_json::json!(c.entrypoint);
        }
        if !c.user.is_empty() {
            config["User"] = serde_json::json!(c.user);
        }
        let image = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": config,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
            },
            "history": layers.iter().map(|_| serde_json::json!({"created_by": "runsc-shim critest"})).collect::<Vec<_>>(),
        });
        let image = serde_json::to_vec(&image).map_err(err("config json"))?;
        let image_size = image.len();
        let config_digest = self.blob(image);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": image_size,
            },
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": l.digest,
                "size": l.size,
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).map_err(err("manifest json"))?;
        let digest = self.blob(manifest);
        self.content.manifests.insert(digest.clone());
        Ok(digest)
    }

    /// Names manifest `digest` `reference` (`host/path:tag`).
    fn tag(&mut self, reference: &str, digest: &str) {
        let (repo, tag) = split_reference(reference);
        self.content
            .tags
            .insert((repo.to_string(), tag.to_string()), digest.to_string());
    }
}

/// The pause image the tier's pods run (containerd's sandbox image is
/// this, pulled and tagged with the name the CRI configuration gives).
pub const SANDBOX_REF: &str = "registry.k8s.io/runsc-shim/critest-sandbox:latest";

/// The manifests' media type.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(
            split_reference("registry.k8s.io/pause:3.9"),
            ("registry.k8s.io/pause", "3.9")
        );
        assert_eq!(
            split_reference("gcr.io/k8s-staging-cri-tools/test-image-latest"),
            ("gcr.io/k8s-staging-cri-tools/test-image-latest", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/a"),
            ("localhost:5000/a", "latest")
        );
    }
}
