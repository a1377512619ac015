//! Library entry points that take tokens check them: a wrong length, a token outside the
//! vocabulary or a part without leaves is an error naming the problem, never a panic and never
//! a silently truncated answer.

use jghm::bp::{self, BpError};
use jghm::evidence::EvidenceError;
use jghm::model::Part;
use jghm::RandomSpec;

fn model() -> jghm::Jghm {
    RandomSpec::symmetric(3, 2, 2, 1).build().unwrap()
}

#[test]
fn pmi_refuses_a_wrong_length_or_an_unknown_token() {
    let m = model();
    let (x, y) = (vec![0, 2, 1, 1], vec![2, 2, 0, 1]);
    assert!(bp::pmi(&m, &x, &y).is_ok());
    let long = vec![0, 2, 1, 1, 1];
    assert!(matches!(
        bp::pmi(&m, &long, &y),
        Err(BpError::Evidence(EvidenceError::Length { part: Part::Image, got: 5, expected: 4 }))
    ));
    assert!(matches!(
        bp::pmi(&m, &x, &[2, 2, 0]),
        Err(BpError::Evidence(EvidenceError::Length { part: Part::Text, got: 3, expected: 4 }))
    ));
    assert!(matches!(
        bp::pmi(&m, &[0, 2, 1, 7], &y),
        Err(BpError::Evidence(EvidenceError::OutOfVocabulary { position: 3, token: 7, .. }))
    ));
}

#[test]
fn root_posterior_of_checks_its_tokens_and_part() {
    let m = model();
    assert!(bp::root_posterior_of(&m, Part::Text, &[0, 1, 2, 0]).is_ok());
    assert!(matches!(bp::root_posterior_of(&m, Part::Image, &[0, 1]), Err(BpError::Evidence(_))));
    assert!(matches!(bp::root_posterior_of(&m, Part::Image, &[0, 1, 2, 3]), Err(BpError::Evidence(_))));
    assert!(matches!(
        bp::root_posterior_of(&m, Part::Shared, &[0]),
        Err(BpError::Evidence(EvidenceError::NoLeaves { .. }))
    ));
}

#[test]
fn next_token_conditional_needs_a_next_position_and_known_tokens() {
    let m = model();
    let p = bp::next_token_conditional(&m, None, &[0, 1, 2]).unwrap();
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert_eq!(
        bp::next_token_conditional(&m, None, &[0, 1, 2, 0]),
        Err(BpError::NoNextToken { prefix: 4, positions: 4 })
    );
    assert!(matches!(bp::next_token_conditional(&m, None, &[0, 5]), Err(BpError::Evidence(_))));
    assert!(matches!(bp::next_token_conditional(&m, Some(&[0, 1]), &[0]), Err(BpError::Evidence(_))));
}

#[test]
fn log_probabilities_check_their_tokens() {
    let m = model();
    let (x, y) = ([0, 2, 1, 1], [2, 2, 0, 1]);
    assert!(bp::log_px(&m, &x).unwrap() < 0.0);
    assert!(bp::log_py(&m, &y).unwrap() < 0.0);
    assert!(bp::log_pxy(&m, &x, &y).unwrap() < 0.0);
    assert!(matches!(bp::log_px(&m, &[0, 2, 1, 1, 1]), Err(BpError::Evidence(EvidenceError::Length { .. }))));
    assert!(matches!(bp::log_py(&m, &[2, 2, 0, 3]), Err(BpError::Evidence(EvidenceError::OutOfVocabulary { .. }))));
    assert!(matches!(bp::log_pxy(&m, &x, &[0]), Err(BpError::Evidence(EvidenceError::Length { .. }))));
    assert!(bp::log_p_y_given_x(&m, &[9, 9, 9, 9], &y).is_err());
}

/// The generic entry points read any [`jghm::bp::Observation`]: raw token slices are checked too.
#[test]
fn observations_are_checked_before_any_pass() {
    let m = model();
    let short = bp::Tokens { image: Some(&[0, 1]), text: None };
    let unknown = bp::Tokens { image: None, text: Some(&[0, 1, 2, 3]) };
    assert!(bp::log_likelihood(&m, &short).is_err());
    assert!(bp::root_posterior(&m, &unknown).is_err());
    assert!(bp::marginals(&m, &short).is_err());
    let mut rng = jghm::rng::stream(1, 0);
    assert!(bp::sample_conditional(&m, &unknown, &mut rng).is_err());
    let lambda = vec![1.0; 3 * 3]; // three leaves' weights where the image has four
    let soft = jghm::evidence::SoftImage { lambda: &lambda, vocab: 3, text: &[0, 1, 2, 0] };
    assert!(bp::marginals(&m, &soft).is_err());
    let negative = [vec![1.0; 11], vec![-1.0]].concat();
    let soft = jghm::evidence::SoftImage { lambda: &negative, vocab: 3, text: &[0, 1, 2, 0] };
    assert!(matches!(bp::marginals(&m, &soft), Err(BpError::Evidence(EvidenceError::SoftEntry { position: 3, .. }))));
}
