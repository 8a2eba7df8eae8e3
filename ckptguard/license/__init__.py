"""License compliance: discover license statements, normalise them to SPDX, judge lineage and
policy, and describe models as an SPDX document."""
