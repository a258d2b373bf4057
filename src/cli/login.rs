//! `rbuild login` and `rbuild logout`: credentials are checked against the registry before
//! they are stored (in Docker's config.json, or the credential helper it names), so a typo
//! never lands in the file; logout removes them.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::Context;
use rbuild::oci::reference::Reference;
use rbuild::registry::client::{Client, Origin, RegistryError, Static};
use rbuild::registry::credentials::{CredentialStore, StoredIn};
use rbuild::registry::registries_conf::RegistriesConf;

use super::args::{LoginArgs, LogoutArgs};

/// Where to reach `registry`'s API, as registries.conf says (insecure means plain HTTP).
fn origin_of(registry: &str) -> anyhow::Result<Origin> {
    let conf = RegistriesConf::load_default()?;
    let probe = Reference::parse(&format!("{registry}/rbuild/login"))
        .with_context(|| format!("invalid registry name {registry:?}"))?;
    let endpoint = conf.push_endpoint(&probe)?;
    Ok(Origin::new(endpoint.api_host(), endpoint.insecure()))
}

fn read_line(prompt: Option<&str>) -> anyhow::Result<String> {
    if let Some(p) = prompt {
        eprint!("{p}");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub(crate) fn login_cmd(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if interactive && !args.password_stdin => read_line(Some("Username: "))?,
        None => anyhow::bail!("give a username with -u"),
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => {
            eprintln!(
                "warning: a password on the command line is visible to other users; use --password-stdin"
            );
            p
        }
        (None, true) => read_line(None)?,
        (None, false) if interactive => read_line(Some("Password: "))?,
        (None, false) => anyhow::bail!("give the password with --password-stdin"),
    };
    if username.is_empty() || password.is_empty() {
        anyhow::bail!("the username and the password must not be empty");
    }
    let origin = origin_of(&args.registry)?;
    let client = Client::new(Box::new(Static(username.clone(), password.clone())));
    match client.ping(&origin) {
        Ok(()) => {}
        Err(RegistryError::Unauthorized { .. }) => {
            anyhow::bail!(
                "login to {} failed: the registry refused these credentials",
                args.registry
            )
        }
        Err(e) => {
            return Err(e).context(format!("checking the credentials with {}", args.registry));
        }
    }
    let store = CredentialStore::from_env();
    match store.store(&args.registry, &username, &password)? {
        StoredIn::File(path) => eprintln!("Credentials stored in {}", path.display()),
        StoredIn::Helper(name) => eprintln!("Credentials stored with docker-credential-{name}"),
    }
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

pub fn logout_cmd(args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let store = CredentialStore::from_env();
    if store.erase(&args.registry)? {
        println!("Removed login credentials for {}", args.registry);
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("not logged in to {}", args.registry)
    }
}
