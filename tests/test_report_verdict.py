"""The report opens with a plain-language verdict built from what the artifact holds: the target,
how strong its vote is, whether the two estimates agree, the pool sizes; an attack-present decision
(/verdict) leads when the artifact has one."""

from __future__ import annotations

from bsd_audit.report.headline import headline

TARGET = {"target_name": "bird", "confidence": 0.84, "agree": True, "second_likely_name": "bird",
          "source": "lga", "num_isolated": 25, "lga_target": 2, "lga_target_name": "bird", "votes": [1, 3, 21]}


def test_strong_agreeing_vote():
    text = " ".join(headline(TARGET, 2500, 1603))
    assert text.startswith("The most likely attack target is \u201cbird\u201d (strong evidence).")
    assert "21 of the 25 lowest-loss samples (84%)" in text and "agrees" in text
    assert "1,603 of 2,500 images (64%)" in text and "897" in text
    assert "no attack-present decision" in text


def test_disagreement_is_weak_and_names_the_other_estimate():
    text = " ".join(headline({**TARGET, "agree": False, "second_likely_name": "cat"}, 100, 60))
    assert "weak evidence" in text and "second-likely estimate names \u201ccat\u201d" in text


def test_the_headline_names_the_class_the_evidence_points_to():
    """The held-out check found the poison in another class than the vote's: the headline names that class."""
    found = headline(TARGET, 100, 60, {"verdict": "poisoned", "reason": "r", "suspected": "cat", "target_in_doubt": True})
    assert found[0] == "Backdoor poisoning found: the attack's target label is most likely \u201ccat\u201d."


def test_user_target():
    text = " ".join(headline({**TARGET, "source": "user"}, 100, 60))
    assert "given by the user" in text and "lowest-loss" not in text


def test_verdict_group_leads():
    found = headline(TARGET, 100, 60, {"verdict": "poisoned", "reason": "Loss gap far above clean runs."})
    assert found[0].startswith("Backdoor poisoning found") and found[1] == "Loss gap far above clean runs."
    assert not any("no attack-present decision" in s for s in found)
    none = headline(TARGET, 100, 60, {"verdict": "clean"})
    assert none[0] == "No backdoor attack found in this dataset."


def test_inconclusive_is_never_headlined_as_no_attack():
    text = headline(TARGET, 100, 60, {"verdict": "inconclusive", "attack_present": False, "reason": "Weak evidence."})
    assert text[0].startswith("Inconclusive:") and "No backdoor attack" not in " ".join(text)
    assert "\u201cbird\u201d" in text[0]


def test_one_isolated_sample_is_reported_as_a_count():
    one = {**TARGET, "num_isolated": 1, "votes": [0, 0, 1], "confidence": 1.0}
    assert "1 of the 1 lowest-loss samples (100%)" in " ".join(headline(one, 12, 6))


def test_a_split_built_around_the_checks_class_says_so():
    """The vote named bird; the held-out check found the trigger group in cat, and the split used cat."""
    target = {**TARGET, "target_name": "cat", "source": "holdout"}
    text = " ".join(headline(target, 100, 60, {"verdict": "poisoned", "reason": "r", "suspected": "cat",
                                                "target_in_doubt": False}))
    assert text.startswith("Backdoor poisoning found: the attack's target label is most likely \u201ccat\u201d.")
    assert "The split was built around \u201ccat\u201d, not the vote's class" in text and "none in \u201cbird\u201d" in text
    assert "built around" not in " ".join(headline(TARGET, 100, 60))  # a vote the split kept: nothing to say
