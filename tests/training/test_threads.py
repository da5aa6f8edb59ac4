"""A rank's intra-op threads: its share of the cores unless the config or OMP_NUM_THREADS says otherwise."""

from vlengine.training.threads import local_ranks, rank_threads


def test_ranks_share_the_cores():
    assert rank_threads(None, {}, cores=2) == 2                                 # one process: every core
    assert rank_threads(None, {"LOCAL_SIZE": "2"}, cores=2) == 1                # DeepSpeed's launcher, 2 ranks
    assert rank_threads(None, {"LOCAL_WORLD_SIZE": "4"}, cores=16) == 4         # torchrun
    assert rank_threads(None, {"LOCAL_WORLD_SIZE": "8"}, cores=2) == 1          # never below one


def test_the_config_and_omp_num_threads_win():
    assert rank_threads(3, {"LOCAL_SIZE": "2", "OMP_NUM_THREADS": "1"}, cores=2) == 3
    assert rank_threads(None, {"LOCAL_SIZE": "2", "OMP_NUM_THREADS": "2"}, cores=2) is None   # torch follows it


def test_malformed_launcher_variables_count_as_one_rank():
    assert local_ranks({"LOCAL_WORLD_SIZE": "", "LOCAL_SIZE": "x"}) == 1
    assert local_ranks({"LOCAL_WORLD_SIZE": "0", "LOCAL_SIZE": "3"}) == 3
