import pytest

from erpose.skeleton import COCO17, CROWDPOSE14, DEFAULT_CUSTOM_SIGMA, Skeleton, SkeletonError, get_skeleton


def test_builtins():
    assert COCO17.num_keypoints == 17 and CROWDPOSE14.num_keypoints == 14
    assert COCO17.sigmas[0] == 0.026 and COCO17.sigmas[11] == 0.107
    assert CROWDPOSE14.sigmas[12] == 0.079
    assert get_skeleton("crowdpose14") is CROWDPOSE14
    assert COCO17.keypoint_names[COCO17.flip_idx[5]] == "right_shoulder"


def test_unknown_builtin():
    with pytest.raises(SkeletonError, match="coco17"):
        get_skeleton("nope")


def test_flip_not_permutation_is_error():
    with pytest.raises(SkeletonError, match="not a permutation"):
        Skeleton.custom(3, flip_idx=[0, 0, 1], sigmas=[0.1] * 3)


def test_custom_without_sigmas_warns_uniform():
    with pytest.warns(UserWarning, match=str(DEFAULT_CUSTOM_SIGMA)):
        sk = Skeleton.custom(5, flip_idx=[1, 0, 2, 4, 3])
    assert sk.sigmas == (DEFAULT_CUSTOM_SIGMA,) * 5


def test_dict_round_trip():
    assert Skeleton.from_dict(CROWDPOSE14.to_dict()) == CROWDPOSE14
