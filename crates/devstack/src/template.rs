//! Reads the queues, the table and the secret parameter names of the local stack from
//! `template.yaml`, so that the local resources cannot drift from the deployed ones.
//!
//! Only the resources the local stack creates are read: `CaptureQueue`,
//! `CaptureDeadLetterQueue` and `CaptureTable`, plus the defaults of the parameters that name
//! the two SSM secrets. Their properties are resolved the way CloudFormation would for a stack
//! named [`TemplateContext::stack_name`]: `!Ref` of a parameter gives its `Default`, `!Sub`
//! fills in pseudo parameters, parameters and `Resource.Attribute`, and `!GetAtt` gives a
//! queue's or table's ARN or a queue's name. Both the short (`!Sub`) and the long
//! (`Fn::Sub:`) forms are understood. Anything else (conditions, `!If`, `!ImportValue`) is an
//! error that names the resource and property, because guessing would make the local stack
//! quietly differ from AWS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// Logical id of the queue producers send capture requests to.
pub const CAPTURE_QUEUE: &str = "CaptureQueue";
/// Logical id of the capture queue's dead-letter queue.
pub const DEAD_LETTER_QUEUE: &str = "CaptureDeadLetterQueue";
/// Logical id of the capture record table.
pub const CAPTURE_TABLE: &str = "CaptureTable";
/// Logical id of the SQS-triggered function.
pub const SUBMITTER_FUNCTION: &str = "SubmitterFunction";
/// Logical id of the webhook function.
pub const WEBHOOK_FUNCTION: &str = "WebhookFunction";
/// Parameter whose default names the SSM parameter holding the PeekShot API key.
pub const API_KEY_PARAMETER: &str = "PeekShotApiKeyParameterName";
/// Parameter whose default names the SSM parameter holding the webhook secret.
pub const WEBHOOK_SECRET_PARAMETER: &str = "WebhookSecretParameterName";

/// The account id moto uses unless told otherwise; ARNs built here must match moto's.
pub const MOTO_ACCOUNT_ID: &str = "123456789012";

/// Queue properties that are not SQS queue attributes.
const NON_ATTRIBUTE_QUEUE_PROPERTIES: &[&str] = &["QueueName", "Tags"];

/// Why the template cannot be turned into local resources.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read the template {path}: {source}")]
    Read {
        /// The template's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not YAML, or its top level is not a mapping.
    #[error("the template {origin} is not a YAML mapping: {reason}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A resource the local stack needs is not declared.
    #[error("the template declares no resource {0}")]
    MissingResource(String),
    /// A resource has another type than the local stack can create for it.
    #[error("resource {resource} has type {found}, but the local stack expects {expected}")]
    WrongType {
        /// Logical id.
        resource: String,
        /// The type in the template.
        found: String,
        /// The type the local stack handles.
        expected: &'static str,
    },
    /// A property is missing, malformed or uses something that cannot be resolved locally.
    #[error("{resource}.{property}: {reason}")]
    Property {
        /// Logical id.
        resource: String,
        /// Property name.
        property: String,
        /// What is wrong.
        reason: String,
    },
}

/// The values CloudFormation would give the pseudo parameters of the local stack.
#[derive(Debug, Clone)]
pub struct TemplateContext {
    /// `AWS::StackName`; the resource names derive from it.
    pub stack_name: String,
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`; [`MOTO_ACCOUNT_ID`] for moto.
    pub account_id: String,
}

impl TemplateContext {
    /// The context of a local stack named `stack_name` in moto's default account.
    pub fn local(stack_name: &str, region: &str) -> Self {
        Self {
            stack_name: stack_name.to_owned(),
            region: region.to_owned(),
            account_id: MOTO_ACCOUNT_ID.to_owned(),
        }
    }

    /// The ARN SQS gives a queue of this name in this account and Region.
    pub fn queue_arn(&self, queue_name: &str) -> String {
        format!(
            "arn:aws:sqs:{}:{}:{queue_name}",
            self.region, self.account_id
        )
    }

    fn table_arn(&self, table_name: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{table_name}",
            self.region, self.account_id
        )
    }
}

/// Everything the local stack creates, as the template declares it.
#[derive(Debug, Clone)]
pub struct LocalResources {
    /// `CaptureQueue`.
    pub capture_queue: QueueSpec,
    /// `CaptureDeadLetterQueue`.
    pub dead_letter_queue: QueueSpec,
    /// `CaptureTable`.
    pub capture_table: TableSpec,
    /// Names of the SSM parameters that hold the two secrets in AWS.
    pub secret_parameters: SecretParameterNames,
}

/// One SQS queue: its name and the attributes to create it with.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// The template's logical id.
    pub logical_id: String,
    /// The resolved `QueueName`.
    pub queue_name: String,
    /// SQS attribute name (the CloudFormation property name, which is the same) to value, as
    /// SetQueueAttributes takes them: numbers and booleans as text, policies as JSON text.
    pub attributes: BTreeMap<String, String>,
}

impl QueueSpec {
    /// The `maxReceiveCount` of the queue's redrive policy, if it has one.
    pub fn max_receive_count(&self) -> Option<u32> {
        let policy: serde_json::Value =
            serde_json::from_str(self.attributes.get("RedrivePolicy")?).ok()?;
        match &policy["maxReceiveCount"] {
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// One DynamoDB table, in CloudFormation's property names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableSpec {
    /// The resolved `TableName`.
    pub table_name: String,
    /// Attributes used by keys.
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// The primary key.
    pub key_schema: Vec<KeyElement>,
    /// `PAY_PER_REQUEST` or `PROVISIONED` (CloudFormation's default).
    #[serde(default)]
    pub billing_mode: Option<String>,
    /// Capacity when `PROVISIONED`.
    #[serde(default)]
    pub provisioned_throughput: Option<Throughput>,
    /// The TTL attribute, if enabled.
    #[serde(default)]
    pub time_to_live_specification: Option<TimeToLive>,
    /// Secondary indexes, if any.
    #[serde(default)]
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
}

/// A key attribute's name and type (`S`, `N` or `B`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    /// Name.
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// One part of a key: `HASH` or `RANGE`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    /// Name.
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// Provisioned read and write capacity.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Throughput {
    /// Read capacity units.
    pub read_capacity_units: i64,
    /// Write capacity units.
    pub write_capacity_units: i64,
}

/// The TTL setting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLive {
    /// The attribute holding the expiry time (epoch seconds).
    pub attribute_name: String,
    /// Whether TTL is on.
    pub enabled: bool,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GlobalSecondaryIndex {
    /// Name.
    pub index_name: String,
    /// The index key.
    pub key_schema: Vec<KeyElement>,
    /// Which attributes the index holds.
    pub projection: Projection,
    /// Capacity when the table is `PROVISIONED`.
    #[serde(default)]
    pub provisioned_throughput: Option<Throughput>,
}

/// A secondary index's projection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Projection {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    #[serde(default)]
    pub projection_type: Option<String>,
    /// The attributes of an `INCLUDE` projection.
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

/// The SSM parameter names that hold the secrets in AWS, when the template declares them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretParameterNames {
    /// Default of [`API_KEY_PARAMETER`].
    pub api_key: Option<String>,
    /// Default of [`WEBHOOK_SECRET_PARAMETER`].
    pub webhook_secret: Option<String>,
}

/// A function's `Environment.Variables` as the local stack can resolve them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionEnvironment {
    /// Variables with a local value.
    pub resolved: BTreeMap<String, String>,
    /// Variables whose value needs something the local stack does not have (a parameter
    /// without `Default`, say), with the reason; the caller must supply these.
    pub unresolved: BTreeMap<String, String>,
}

/// A parsed template, ready to resolve resources for one stack.
pub struct Template {
    parameters: Mapping,
    resources: Mapping,
}

impl Template {
    /// Reads and parses the template at `path`.
    pub fn from_path(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses template text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TemplateError> {
        let syntax = |reason: String| TemplateError::Syntax {
            origin: origin.to_owned(),
            reason,
        };
        let root: Value = serde_yaml::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let Value::Mapping(root) = root else {
            return Err(syntax("the top level is not a mapping".into()));
        };
        let section = |name: &str| match root.get(name) {
            Some(Value::Mapping(m)) => Ok(m.clone()),
            None => Ok(Mapping::new()),
            Some(_) => Err(syntax(format!("{name} is not a mapping"))),
        };
        Ok(Self {
            parameters: section("Parameters")?,
            resources: section("Resources")?,
        })
    }

    /// The local stack's resources, resolved for `context`.
    pub fn local_resources(
        &self,
        context: &TemplateContext,
    ) -> Result<LocalResources, TemplateError> {
        Ok(LocalResources {
            capture_queue: self.queue(CAPTURE_QUEUE, context)?,
            dead_letter_queue: self.queue(DEAD_LETTER_QUEUE, context)?,
            capture_table: self.table(CAPTURE_TABLE, context)?,
            secret_parameters: SecretParameterNames {
                api_key: self.parameter_default_text(API_KEY_PARAMETER),
                webhook_secret: self.parameter_default_text(WEBHOOK_SECRET_PARAMETER),
            },
        })
    }

    /// The queue declared as `logical_id`.
    pub fn queue(
        &self,
        logical_id: &str,
        context: &TemplateContext,
    ) -> Result<QueueSpec, TemplateError> {
        let properties = self.properties(logical_id, "AWS::SQS::Queue", context)?;
        let property_error = |property: &str, reason: String| TemplateError::Property {
            resource: logical_id.to_owned(),
            property: property.to_owned(),
            reason,
        };

        let queue_name = match properties.get("QueueName") {
            Some(Value::String(name)) => name.clone(),
            Some(_) => return Err(property_error("QueueName", "is not text".into())),
            None => {
                return Err(property_error(
                    "QueueName",
                    "is missing; the local stack needs a fixed name".into(),
                ));
            }
        };

        let mut attributes = BTreeMap::new();
        for (key, value) in &properties {
            let Some(name) = key.as_str() else { continue };
            if NON_ATTRIBUTE_QUEUE_PROPERTIES.contains(&name) {
                continue;
            }
            let text = attribute_text(value).map_err(|reason| property_error(name, reason))?;
            attributes.insert(name.to_owned(), text);
        }

        Ok(QueueSpec {
            logical_id: logical_id.to_owned(),
            queue_name,
            attributes,
        })
    }

    /// The table declared as `logical_id`.
    pub fn table(
        &self,
        logical_id: &str,
        context: &TemplateContext,
    ) -> Result<TableSpec, TemplateError> {
        let properties = self.properties(logical_id, "AWS::DynamoDB::Table", context)?;
        serde_yaml::from_value(Value::Mapping(properties)).map_err(|e| TemplateError::Property {
            resource: logical_id.to_owned(),
            property: "Properties".into(),
            reason: e.to_string(),
        })
    }

    /// The environment the template gives the function `logical_id`, resolved for the local
    /// stack: parameters take their defaults, and `!Ref` to a resource takes its value from
    /// `references` (logical id to local queue URL or table name).
    pub fn function_environment(
        &self,
        logical_id: &str,
        context: &TemplateContext,
        references: &BTreeMap<String, String>,
    ) -> Result<FunctionEnvironment, TemplateError> {
        let resource = self.resource(logical_id)?;
        let kind = resource
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        if kind != "AWS::Serverless::Function" && kind != "AWS::Lambda::Function" {
            return Err(TemplateError::WrongType {
                resource: logical_id.to_owned(),
                found: kind.to_owned(),
                expected: "AWS::Serverless::Function",
            });
        }
        let variables = resource
            .get("Properties")
            .and_then(|p| p.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping);

        let resolver = Resolver {
            template: self,
            context,
            resource: logical_id,
            references,
        };
        let mut environment = FunctionEnvironment::default();
        for (key, value) in variables.into_iter().flatten() {
            let Some(name) = key.as_str() else { continue };
            let property = format!("Environment.Variables.{name}");
            let text = resolver.resolve(value, &property).and_then(|resolved| {
                scalar_text(&resolved)
                    .ok_or_else(|| resolver.error(&property, "is not a scalar".into()))
            });
            match text {
                Ok(text) => environment.resolved.insert(name.to_owned(), text),
                Err(error) => environment
                    .unresolved
                    .insert(name.to_owned(), error.to_string()),
            };
        }
        Ok(environment)
    }

    /// The resolved `Properties` of a resource that must have type `expected`.
    fn properties(
        &self,
        logical_id: &str,
        expected: &'static str,
        context: &TemplateContext,
    ) -> Result<Mapping, TemplateError> {
        let resource = self.resource(logical_id)?;
        let found = resource
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        if found != expected {
            return Err(TemplateError::WrongType {
                resource: logical_id.to_owned(),
                found: found.to_owned(),
                expected,
            });
        }

        let Some(Value::Mapping(properties)) = resource.get("Properties") else {
            return Ok(Mapping::new());
        };
        let no_references = BTreeMap::new();
        let resolver = Resolver {
            template: self,
            context,
            resource: logical_id,
            references: &no_references,
        };
        let mut resolved = Mapping::new();
        for (key, value) in properties {
            let property = key.as_str().unwrap_or("?");
            resolved.insert(key.clone(), resolver.resolve(value, property)?);
        }
        Ok(resolved)
    }

    fn resource(&self, logical_id: &str) -> Result<&Mapping, TemplateError> {
        match self.resources.get(logical_id) {
            Some(Value::Mapping(resource)) => Ok(resource),
            _ => Err(TemplateError::MissingResource(logical_id.to_owned())),
        }
    }

    fn parameter(&self, name: &str) -> Option<&Mapping> {
        self.parameters.get(name).and_then(Value::as_mapping)
    }

    fn parameter_default_text(&self, name: &str) -> Option<String> {
        scalar_text(self.parameter(name)?.get("Default")?)
    }
}

/// Resolves intrinsic functions inside one resource's properties.
struct Resolver<'a> {
    template: &'a Template,
    context: &'a TemplateContext,
    resource: &'a str,
    /// Values of `!Ref` to resources (a queue's URL, a table's name), known only once they
    /// exist; empty while the resources themselves are read.
    references: &'a BTreeMap<String, String>,
}

impl Resolver<'_> {
    fn error(&self, property: &str, reason: String) -> TemplateError {
        TemplateError::Property {
            resource: self.resource.to_owned(),
            property: property.to_owned(),
            reason,
        }
    }

    /// Returns `value` with every intrinsic function replaced by its value.
    fn resolve(&self, value: &Value, property: &str) -> Result<Value, TemplateError> {
        if let Some((function, argument)) = intrinsic(value) {
            return self.call(&function, argument, property);
        }
        match value {
            Value::Mapping(mapping) => {
                let mut resolved = Mapping::new();
                for (key, item) in mapping {
                    resolved.insert(key.clone(), self.resolve(item, property)?);
                }
                Ok(Value::Mapping(resolved))
            }
            Value::Sequence(items) => Ok(Value::Sequence(
                items
                    .iter()
                    .map(|item| self.resolve(item, property))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Tagged(tagged) => Err(self.error(
                property,
                format!("the local stack cannot resolve {}", tagged.tag),
            )),
            scalar => Ok(scalar.clone()),
        }
    }

    fn call(
        &self,
        function: &str,
        argument: &Value,
        property: &str,
    ) -> Result<Value, TemplateError> {
        match function {
            "Ref" => {
                let name = argument
                    .as_str()
                    .ok_or_else(|| self.error(property, "!Ref takes a name".into()))?;
                self.reference(name, property)
            }
            "Sub" => self.substitute(argument, property).map(Value::String),
            "GetAtt" => {
                let (resource, attribute) = match argument {
                    Value::String(text) => text.split_once('.').ok_or_else(|| {
                        self.error(property, format!("!GetAtt {text} has no attribute"))
                    })?,
                    Value::Sequence(parts) => match parts.as_slice() {
                        [Value::String(r), Value::String(a)] => (r.as_str(), a.as_str()),
                        _ => return Err(self.error(property, "malformed !GetAtt".into())),
                    },
                    _ => return Err(self.error(property, "malformed !GetAtt".into())),
                };
                self.attribute(resource, attribute, property)
                    .map(Value::String)
            }
            other => Err(self.error(
                property,
                format!("the local stack cannot resolve the intrinsic function {other}"),
            )),
        }
    }

    /// `!Ref name`: a pseudo parameter or a parameter's default.
    fn reference(&self, name: &str, property: &str) -> Result<Value, TemplateError> {
        let pseudo = match name {
            "AWS::StackName" => Some(self.context.stack_name.clone()),
            "AWS::Region" => Some(self.context.region.clone()),
            "AWS::AccountId" => Some(self.context.account_id.clone()),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Value::String(value));
        }

        if let Some(value) = self.references.get(name) {
            return Ok(Value::String(value.clone()));
        }
        let Some(parameter) = self.template.parameter(name) else {
            return Err(self.error(
                property,
                format!("!Ref {name} names no parameter and no resource the local stack provides"),
            ));
        };
        let Some(default) = parameter.get("Default") else {
            return Err(self.error(
                property,
                format!("parameter {name} has no Default for the local stack to use"),
            ));
        };
        let is_number = parameter.get("Type").and_then(Value::as_str) == Some("Number");
        match (is_number, default) {
            (true, Value::String(text)) => text
                .trim()
                .parse::<i64>()
                .map(|n| Value::Number(n.into()))
                .map_err(|_| {
                    self.error(
                        property,
                        format!("parameter {name}'s Default is not a number"),
                    )
                }),
            (_, Value::String(_) | Value::Number(_) | Value::Bool(_)) => Ok(default.clone()),
            _ => Err(self.error(
                property,
                format!("parameter {name}'s Default is not a scalar"),
            )),
        }
    }

    /// `!GetAtt resource.attribute` for the attributes a queue or table offers.
    fn attribute(
        &self,
        resource: &str,
        attribute: &str,
        property: &str,
    ) -> Result<String, TemplateError> {
        let unsupported = || {
            self.error(
                property,
                format!("the local stack cannot resolve !GetAtt {resource}.{attribute}"),
            )
        };
        let target = self
            .template
            .resource(resource)
            .map_err(|_| unsupported())?;
        let kind = target
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name_property = match kind {
            "AWS::SQS::Queue" => "QueueName",
            "AWS::DynamoDB::Table" => "TableName",
            _ => return Err(unsupported()),
        };
        if resource == self.resource {
            return Err(self.error(property, format!("{resource} refers to itself")));
        }
        let name = target
            .get("Properties")
            .and_then(|p| p.get(name_property))
            .ok_or_else(unsupported)?;
        let inner = Resolver {
            template: self.template,
            context: self.context,
            resource,
            references: self.references,
        };
        let name = scalar_text(&inner.resolve(name, name_property)?).ok_or_else(unsupported)?;

        match (kind, attribute) {
            ("AWS::SQS::Queue", "Arn") => Ok(self.context.queue_arn(&name)),
            ("AWS::SQS::Queue", "QueueName") => Ok(name),
            ("AWS::DynamoDB::Table", "Arn") => Ok(self.context.table_arn(&name)),
            _ => Err(unsupported()),
        }
    }

    /// `!Sub text` or `!Sub [text, {variables}]`.
    fn substitute(&self, argument: &Value, property: &str) -> Result<String, TemplateError> {
        let (text, variables) = match argument {
            Value::String(text) => (text.as_str(), None),
            Value::Sequence(parts) => match parts.as_slice() {
                [Value::String(text), Value::Mapping(variables)] => {
                    (text.as_str(), Some(variables))
                }
                _ => return Err(self.error(property, "malformed !Sub".into())),
            },
            _ => return Err(self.error(property, "malformed !Sub".into())),
        };

        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| self.error(property, format!("unclosed ${{ in !Sub {text:?}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                out.push_str(&self.variable(name, variables, property)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn variable(
        &self,
        name: &str,
        variables: Option<&Mapping>,
        property: &str,
    ) -> Result<String, TemplateError> {
        let value = match variables.and_then(|v| v.get(name)) {
            Some(value) => self.resolve(value, property)?,
            None => match name.split_once('.') {
                Some((resource, attribute)) if !name.starts_with("AWS::") => {
                    Value::String(self.attribute(resource, attribute, property)?)
                }
                _ => self.reference(name, property)?,
            },
        };
        scalar_text(&value)
            .ok_or_else(|| self.error(property, format!("${{{name}}} is not a scalar")))
    }
}

/// Recognises `!Fn value` and `{ "Fn::Fn": value }` / `{ "Ref": value }`, giving the
/// function's short name and its argument.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            Some((tag.trim_start_matches('!').to_owned(), &tagged.value))
        }
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, argument) = mapping.iter().next()?;
            let key = key.as_str()?;
            if key == "Ref" {
                Some(("Ref".to_owned(), argument))
            } else {
                key.strip_prefix("Fn::")
                    .map(|name| (name.to_owned(), argument))
            }
        }
        _ => None,
    }
}

/// Text of a string, number or boolean.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A resolved property as SQS takes it as an attribute value: scalars as text, policies
/// (mappings) as JSON.
fn attribute_text(value: &Value) -> Result<String, String> {
    if let Some(text) = scalar_text(value) {
        return Ok(text);
    }
    match value {
        Value::Mapping(_) | Value::Sequence(_) => {
            serde_json::to_string(value).map_err(|e| format!("cannot be written as JSON: {e}"))
        }
        _ => Err("is empty".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"
Parameters:
  MaxReceiveCount:
    Type: Number
    Default: 3
  Retention:
    Type: Number
    Default: "86400"
  PeekShotApiKeyParameterName:
    Type: String
    Default: /p/api-key
Resources:
  CaptureQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-captures"
      VisibilityTimeout: 45
      SqsManagedSseEnabled: true
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt CaptureDeadLetterQueue.Arn
        maxReceiveCount: !Ref MaxReceiveCount
  CaptureDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName:
        Fn::Sub: "${AWS::StackName}-captures-dlq"
      MessageRetentionPeriod: !Ref Retention
      RedriveAllowPolicy:
        redrivePermission: byQueue
        sourceQueueArns:
          - !Sub "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-captures"
  CaptureTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub ["${Stack}-captures", {Stack: !Ref "AWS::StackName"}]
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: requestId, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
      TimeToLiveSpecification: {AttributeName: expiresAt, Enabled: true}
      GlobalSecondaryIndexes:
        - IndexName: byRequestId
          KeySchema: [{AttributeName: requestId, KeyType: HASH}]
          Projection: {ProjectionType: KEYS_ONLY}
"#;

    fn context() -> TemplateContext {
        TemplateContext::local("demo", "eu-west-1")
    }

    fn fixture() -> LocalResources {
        let template = Template::parse(FIXTURE, "fixture").expect("fixture parses");
        template
            .local_resources(&context())
            .expect("fixture resolves")
    }

    #[test]
    fn queue_names_are_substituted_with_the_stack_name() {
        let resources = fixture();
        assert_eq!(resources.capture_queue.queue_name, "demo-captures");
        assert_eq!(resources.dead_letter_queue.queue_name, "demo-captures-dlq");
        assert_eq!(resources.capture_table.table_name, "demo-captures");
    }

    #[test]
    fn redrive_policy_points_at_the_dead_letter_queue_with_the_parameter_default() {
        let queue = fixture().capture_queue;
        let policy: serde_json::Value =
            serde_json::from_str(&queue.attributes["RedrivePolicy"]).expect("policy is JSON");
        assert_eq!(
            policy["deadLetterTargetArn"],
            "arn:aws:sqs:eu-west-1:123456789012:demo-captures-dlq"
        );
        assert_eq!(policy["maxReceiveCount"], 3);
        assert_eq!(queue.max_receive_count(), Some(3));
    }

    #[test]
    fn scalar_properties_become_attribute_text_and_the_name_is_not_an_attribute() {
        let resources = fixture();
        let queue = &resources.capture_queue.attributes;
        assert_eq!(queue["VisibilityTimeout"], "45");
        assert_eq!(queue["SqsManagedSseEnabled"], "true");
        assert!(!queue.contains_key("QueueName"));
        assert_eq!(
            resources.dead_letter_queue.attributes["MessageRetentionPeriod"],
            "86400"
        );
    }

    #[test]
    fn sub_fills_in_partition_region_and_account() {
        let allow: serde_json::Value =
            serde_json::from_str(&fixture().dead_letter_queue.attributes["RedriveAllowPolicy"])
                .expect("policy is JSON");
        assert_eq!(
            allow["sourceQueueArns"][0],
            "arn:aws:sqs:eu-west-1:123456789012:demo-captures"
        );
    }

    #[test]
    fn table_keeps_keys_ttl_and_secondary_indexes() {
        let table = fixture().capture_table;
        assert_eq!(
            table.key_schema,
            vec![KeyElement {
                attribute_name: "pk".into(),
                key_type: "HASH".into()
            }]
        );
        assert_eq!(table.attribute_definitions.len(), 2);
        let ttl = table.time_to_live_specification.expect("ttl");
        assert_eq!(
            (ttl.attribute_name.as_str(), ttl.enabled),
            ("expiresAt", true)
        );
        assert_eq!(table.global_secondary_indexes[0].index_name, "byRequestId");
        assert_eq!(table.billing_mode.as_deref(), Some("PAY_PER_REQUEST"));
    }

    #[test]
    fn secret_parameter_names_come_from_parameter_defaults() {
        let names = fixture().secret_parameters;
        assert_eq!(names.api_key.as_deref(), Some("/p/api-key"));
        assert_eq!(names.webhook_secret, None);
    }

    #[test]
    fn function_environment_resolves_parameters_and_local_resource_references() {
        let text = r#"
Parameters:
  Concurrency: {Type: Number, Default: 4}
  ProjectId: {Type: String}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          QUEUE_URL: !Ref CaptureQueue
          CONCURRENCY: !Ref Concurrency
          PROJECT: !Ref ProjectId
          RUST_LOG: info
"#;
        let template = Template::parse(text, "inline").expect("parses");
        let references = BTreeMap::from([("CaptureQueue".to_owned(), "http://q".to_owned())]);

        let env = template
            .function_environment("Fn", &context(), &references)
            .expect("reads");

        assert_eq!(env.resolved["QUEUE_URL"], "http://q");
        assert_eq!(env.resolved["CONCURRENCY"], "4");
        assert_eq!(env.resolved["RUST_LOG"], "info");
        assert!(
            env.unresolved["PROJECT"].contains("no Default"),
            "{:?}",
            env.unresolved
        );
    }

    #[test]
    fn a_missing_resource_is_named() {
        let template = Template::parse("Resources: {}", "empty").expect("parses");
        let err = template
            .local_resources(&context())
            .expect_err("no resources");
        assert!(err.to_string().contains("CaptureQueue"), "{err}");
    }

    #[test]
    fn an_unresolvable_function_names_the_resource_and_property() {
        let text = r#"
Resources:
  CaptureQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: q
      VisibilityTimeout: !If [Cond, 1, 2]
"#;
        let template = Template::parse(text, "inline").expect("parses");
        let err = template
            .queue(CAPTURE_QUEUE, &context())
            .expect_err("!If is unsupported");
        assert_eq!(
            err.to_string(),
            "CaptureQueue.VisibilityTimeout: the local stack cannot resolve the intrinsic function If"
        );
    }

    #[test]
    fn a_parameter_without_default_is_an_error() {
        let text = r#"
Parameters:
  Name: {Type: String}
Resources:
  CaptureQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Ref Name
"#;
        let template = Template::parse(text, "inline").expect("parses");
        let err = template
            .queue(CAPTURE_QUEUE, &context())
            .expect_err("no default");
        assert!(
            err.to_string().contains("parameter Name has no Default"),
            "{err}"
        );
    }

    #[test]
    fn escaped_sub_variables_stay_literal() {
        let text = r#"
Resources:
  CaptureQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-${!literal}"
"#;
        let template = Template::parse(text, "inline").expect("parses");
        let queue = template.queue(CAPTURE_QUEUE, &context()).expect("resolves");
        assert_eq!(queue.queue_name, "demo-${literal}");
    }

    #[test]
    fn a_resource_of_another_type_is_rejected() {
        let text = "Resources:\n  CaptureTable:\n    Type: AWS::SQS::Queue\n";
        let template = Template::parse(text, "inline").expect("parses");
        let err = template
            .table(CAPTURE_TABLE, &context())
            .expect_err("wrong type");
        assert!(
            err.to_string().contains("expects AWS::DynamoDB::Table"),
            "{err}"
        );
    }
}
