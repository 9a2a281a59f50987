//! The `--users FILE` format of `mec-location-server`:
//!
//! ```json
//! {"users": [
//!   {"address": "acr:10.0.0.1", "zoneId": "yintai-mall", "accessPointId": "cell-1",
//!    "latitude": 30.2713, "longitude": 120.1631},
//!   {"address": "acr:10.0.0.2", "zoneId": "default", "accessPointId": "cell-9"}
//! ]}
//! ```

use serde::Deserialize;

use crate::address::is_uri_address;
use crate::client::GeoPoint;
use crate::transport::describe_json_error;

/// A user to place on the server at start.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedUser {
    pub address: String,
    pub zone_id: String,
    pub access_point_id: String,
    pub location: Option<GeoPoint>,
}

#[derive(Debug, thiserror::Error)]
#[error("users file: `{field}`: {reason}")]
pub struct UsersFileError {
    pub field: String,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserEntry {
    address: String,
    zone_id: String,
    access_point_id: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

pub fn parse_users_file(text: &str) -> Result<Vec<SeedUser>, UsersFileError> {
    let deserializer = &mut serde_json::Deserializer::from_str(text);
    let file: UsersFile = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let (field, reason) = describe_json_error(&error);
        UsersFileError { field, reason }
    })?;
    file.users
        .into_iter()
        .enumerate()
        .map(|(index, entry)| seed_user(index, entry))
        .collect()
}

fn seed_user(index: usize, entry: UserEntry) -> Result<SeedUser, UsersFileError> {
    let error = |member: &str, reason: String| UsersFileError {
        field: format!("users[{index}].{member}"),
        reason,
    };
    if !is_uri_address(&entry.address) {
        return Err(error(
            "address",
            format!("`{}` is not a URI (e.g. acr:10.0.0.1)", entry.address),
        ));
    }
    if entry.zone_id.is_empty() {
        return Err(error("zoneId", "empty".into()));
    }
    if entry.access_point_id.is_empty() {
        return Err(error("accessPointId", "empty".into()));
    }
    let location = match (entry.latitude, entry.longitude) {
        (None, None) => None,
        (Some(latitude), Some(longitude)) => {
            if !(-90.0..=90.0).contains(&latitude) {
                return Err(error("latitude", format!("{latitude} is outside -90..=90")));
            }
            if !(-180.0..=180.0).contains(&longitude) {
                return Err(error(
                    "longitude",
                    format!("{longitude} is outside -180..=180"),
                ));
            }
            Some(GeoPoint {
                latitude,
                longitude,
            })
        }
        (Some(_), None) => return Err(error("longitude", "latitude is given without it".into())),
        (None, Some(_)) => return Err(error("latitude", "longitude is given without it".into())),
    };
    Ok(SeedUser {
        address: entry.address,
        zone_id: entry.zone_id,
        access_point_id: entry.access_point_id,
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users_with_and_without_a_fix() {
        let users = parse_users_file(
            r#"{"users": [
                {"address": "acr:10.0.0.1", "zoneId": "mall", "accessPointId": "c1",
                 "latitude": 30.27, "longitude": 120.16},
                {"address": "acr:10.0.0.2", "zoneId": "default", "accessPointId": "c9"}]}"#,
        )
        .expect("valid file");
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].location.map(|p| p.latitude), Some(30.27));
        assert_eq!(users[1].location, None);
    }

    #[test]
    fn names_the_bad_entry() {
        let error = parse_users_file(
            r#"{"users": [{"address": "acr:10.0.0.1", "zoneId": "mall", "accessPointId": "c1"},
                          {"address": "10.0.0.2", "zoneId": "mall", "accessPointId": "c1"}]}"#,
        )
        .unwrap_err();
        assert_eq!(error.field, "users[1].address");
        let missing =
            parse_users_file(r#"{"users": [{"address": "acr:10.0.0.1", "zoneId": "m"}]}"#)
                .unwrap_err();
        assert_eq!(missing.field, "users[0].accessPointId");
    }
}
