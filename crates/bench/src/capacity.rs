//! DynamoDB's item size rules, to turn counted writes into billed write request units.
//!
//! On-demand tables bill one write request unit per started kilobyte of the item written (the
//! larger of the item before and after the write), conditional writes that fail included. The
//! size of an item is the sum of its attribute names and values as DynamoDB's developer guide
//! ("Item sizes and formats") defines them; [`item_size`] applies those rules to the items as
//! they are in moto after the run, which is the largest each item gets, so the units are an
//! upper bound per write.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// One write request unit covers up to this many bytes of item.
pub const WRITE_UNIT_BYTES: usize = 1024;

/// The size DynamoDB bills for `item`, in bytes.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// Write request units one write of an item of `size` bytes costs.
pub fn write_units(size: usize) -> usize {
    size.div_ceil(WRITE_UNIT_BYTES).max(1)
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, v)| 1 + name.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// One byte per two significant digits, plus one.
fn number_size(number: &str) -> usize {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_developer_guide() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("capture#abc".into())),
            ("attempts".to_owned(), AttributeValue::N("1".into())),
            (
                "options".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "fullPage".to_owned(),
                    AttributeValue::Bool(true),
                )])),
            ),
        ]);
        // pk: 2 + 11; attempts: 8 + 2; options: 7 + 3 + (1 + 8 + 1).
        assert_eq!(item_size(&item), 13 + 10 + 20);
    }

    #[test]
    fn a_write_costs_one_unit_per_started_kilobyte() {
        assert_eq!(write_units(1), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
    }
}
