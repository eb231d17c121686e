"""One model of the channels per test session: writing and indexing it takes seconds."""
import pytest

import channel_model as M


@pytest.fixture(scope="session")
def model_channels(tmp_path_factory):
    """name -> directory of each modelled channel (pytorch, nvidia, conda-forge, ours)."""
    return M.build_channels(str(tmp_path_factory.mktemp("channels")), M.all_packages())
