//! Users, vhosts, permissions and topic permissions.

use super::{Ctl, permission_path, user_path, vhost_path};
use crate::ctl::client::seg;
use crate::ctl::error::{self, CtlError, OrMissing, Result};
use serde_json::{Map, Value, json};

impl Ctl<'_> {
    pub(super) fn add_user(&mut self, user: &str, pass: Option<&str>) -> Result<()> {
        self.banner(format!("Adding user \"{user}\" ..."))?;
        let password = password_or_stdin(pass)?;
        // The API's PUT would overwrite an existing user; rabbitmqctl refuses.
        if self.client.exists(&user_path(user))? {
            return Err(CtlError::data(format!("user '{user}' already exists")));
        }
        self.client
            .put(&user_path(user), &json!({"password": password, "tags": ""}))
    }

    pub(super) fn delete_user(&mut self, user: &str) -> Result<()> {
        self.banner(format!("Deleting user \"{user}\" ..."))?;
        self.client
            .delete(&user_path(user))
            .or_missing(|| CtlError::no_user(user))
    }

    pub(super) fn change_password(&mut self, user: &str, pass: Option<&str>) -> Result<()> {
        self.banner(format!("Changing password for user \"{user}\" ..."))?;
        let password = password_or_stdin(pass)?;
        let record = self.user(user)?;
        self.client.put(
            &user_path(user),
            &json!({"password": password, "tags": tags_of(&record)}),
        )
    }

    pub(super) fn clear_password(&mut self, user: &str) -> Result<()> {
        self.banner(format!("Clearing password for user \"{user}\" ..."))?;
        let record = self.user(user)?;
        self.client.put(
            &user_path(user),
            &json!({"password_hash": "", "tags": tags_of(&record)}),
        )
    }

    pub(super) fn set_user_tags(&mut self, user: &str, tags: &[String]) -> Result<()> {
        self.banner(format!(
            "Setting tags for user \"{user}\" to [{}] ...",
            tags.join(", ")
        ))?;
        let record = self.user(user)?;
        // Without a password or a hash the API would clear the password: send the
        // current hash back.
        let mut body = json!({
            "password_hash": record.get("password_hash").cloned().unwrap_or(json!("")),
            "tags": tags.join(","),
        });
        if let Some(alg) = record.get("hashing_algorithm") {
            body["hashing_algorithm"] = alg.clone();
        }
        self.client.put(&user_path(user), &body)
    }

    pub(super) fn add_vhost(
        &mut self,
        name: &str,
        description: Option<&str>,
        tags: Option<&str>,
        default_queue_type: Option<&str>,
    ) -> Result<()> {
        self.banner(format!("Adding vhost \"{name}\" ..."))?;
        let mut body = Map::new();
        for (key, value) in [
            ("description", description),
            ("tags", tags),
            ("default_queue_type", default_queue_type),
        ] {
            if let Some(value) = value {
                body.insert(key.into(), json!(value));
            }
        }
        self.client.put(&vhost_path(name), &Value::Object(body))
    }

    pub(super) fn delete_vhost(&mut self, name: &str) -> Result<()> {
        self.banner(format!("Deleting vhost \"{name}\" ..."))?;
        self.client
            .delete(&vhost_path(name))
            .or_missing(|| CtlError::no_vhost(name))
    }

    pub(super) fn set_permissions(
        &mut self,
        user: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<()> {
        let v = self.vhost();
        self.banner(format!(
            "Setting permissions for user \"{user}\" in vhost \"{v}\" ..."
        ))?;
        let body = json!({"configure": configure, "write": write, "read": read});
        let r = self.client.put(&permission_path(v, user), &body);
        r.map_err(|e| self.diagnose(e, Some(v), Some(user)))
    }

    pub(super) fn clear_permissions(&mut self, user: &str) -> Result<()> {
        let v = self.vhost();
        self.banner(format!(
            "Clearing permissions for user \"{user}\" in vhost \"{v}\" ..."
        ))?;
        let r = self.client.delete(&permission_path(v, user));
        self.none_is_fine(r, v, user)
    }

    pub(super) fn set_topic_permissions(
        &mut self,
        user: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<()> {
        let v = self.vhost();
        self.banner(format!(
            "Setting topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{v}\" ..."
        ))?;
        let body = json!({"exchange": exchange, "write": write, "read": read});
        let path = format!("/topic-permissions/{}/{}", seg(v), seg(user));
        let r = self.client.put(&path, &body);
        r.map_err(|e| self.diagnose(e, Some(v), Some(user)))
    }

    pub(super) fn clear_topic_permissions(
        &mut self,
        user: &str,
        exchange: Option<&str>,
    ) -> Result<()> {
        let v = self.vhost();
        let mut path = format!("/topic-permissions/{}/{}", seg(v), seg(user));
        match exchange {
            Some(x) => {
                self.banner(format!(
                    "Clearing topic permissions on \"{x}\" for user \"{user}\" in vhost \"{v}\" ..."
                ))?;
                path.push('/');
                path.push_str(&seg(x));
            }
            None => self.banner(format!(
                "Clearing topic permissions for user \"{user}\" in vhost \"{v}\" ..."
            ))?,
        }
        let r = self.client.delete(&path);
        self.none_is_fine(r, v, user)
    }

    fn user(&self, user: &str) -> Result<Value> {
        self.client
            .get(&user_path(user))
            .or_missing(|| CtlError::no_user(user))
    }

    /// Turns a 400 or 404 on a path naming a vhost (and a user) into "vhost 'v' does
    /// not exist" or "user 'u' does not exist" when that is why (RabbitMQ answers 400
    /// `vhost_or_user_not_found` to a PUT of permissions); other errors pass through.
    pub(super) fn diagnose(
        &self,
        e: CtlError,
        vhost: Option<&str>,
        user: Option<&str>,
    ) -> CtlError {
        if e.code != error::DATA {
            return e;
        }
        if let Some(v) = vhost {
            match self.client.exists(&vhost_path(v)) {
                Ok(false) => return CtlError::no_vhost(v),
                Err(other) => return other,
                Ok(true) => {}
            }
        }
        if let Some(u) = user {
            match self.client.exists(&user_path(u)) {
                Ok(false) => return CtlError::no_user(u),
                Err(other) => return other,
                Ok(true) => {}
            }
        }
        e
    }

    /// Clearing permissions that are not there is not an error (rabbitmqctl's way), as
    /// long as the vhost and the user exist.
    fn none_is_fine(&self, r: Result<()>, vhost: &str, user: &str) -> Result<()> {
        match r {
            Err(e) if e.not_found => match self.diagnose(e, Some(vhost), Some(user)) {
                e if e.not_found => Ok(()),
                other => Err(other),
            },
            other => other,
        }
    }
}

/// A user's tags as the API's PUT takes them: comma-separated (GET gives an array in
/// 3.9+, a string before).
fn tags_of(user: &Value) -> String {
    match user.get("tags") {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The password given, else one line of standard input (rabbitmqctl's way of keeping
/// it out of the process list).
fn password_or_stdin(given: Option<&str>) -> Result<String> {
    if let Some(p) = given {
        return Ok(p.to_string());
    }
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(n) if n > 0 => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
        _ => Err(CtlError::data(
            "password is not provided via argument or stdin",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_both_shapes() {
        assert_eq!(
            tags_of(&json!({"tags": ["administrator", "monitoring"]})),
            "administrator,monitoring"
        );
        assert_eq!(tags_of(&json!({"tags": "management"})), "management");
        assert_eq!(tags_of(&json!({})), "");
    }
}
