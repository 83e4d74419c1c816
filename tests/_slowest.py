"""Measured durations (s) of the suite's slowest tests, for scheduling only (tests/conftest.py).

The two xdist workers take the longest units first (longest-processing-time-first list
scheduling), so that no worker is left alone with a two-minute test at the end of the run.
Figures: a fresh-clone ``bash .ci/run`` of main 49ed944 with ``--durations=60``, 2 cores,
load 3-8 (wall seconds per test, setup included; only their order matters).  A test missing
here (renamed, new) is scheduled as a short one: DEFAULT_S.  Re-measure with
``PYTEST_ADDOPTS=--durations=60 bash .ci/run`` when the slowest tests change.  Entries marked
suite3: that test's own ``--durations`` after its change (docs/BENCHMARKS.md, "Issue 17 — suite
wall time, third pass").
"""
from __future__ import annotations

DEFAULT_S = 0.5

SLOWEST_S: dict[str, float] = {
    "tests/test_train_accuracy.py::test_training_from_scratch_reaches_95_percent": 50,  # stops at the bar (suite2)
    "tests/test_gesture_set.py::test_cli_realistic_default_is_byte_identical_to_the_library": 97,
    "tests/test_campaign_run.py::test_shipped_time_scaling_with_power_runs": 60,  # was 94; smu: -40 % sequential
    "tests/test_gesture_set.py::test_release_layout_and_split": 68,
    "tests/test_campaign_resume.py::test_sigkill_with_local_dask_workers_then_resume": 69,
    "tests/test_fuzz_firmware.py::test_fuzz_frames_bounded_memory_no_internal_no_hang[20000]": 40,
    "tests/test_gesture_set.py::test_deterministic_for_a_seed": 36,
    "tests/test_campaign_workers.py::test_one_two_and_separate_cluster_give_identical_tables": 32,
    "tests/test_campaign_resume.py::test_ctrl_c_to_the_process_group_with_local_workers": 31,
    "tests/test_view.py::test_viewer_killed_mid_run_changes_nothing": 28,
    "tests/test_conformance.py::test_broken_variant_fails_its_named_check[busy-never-cleared]": 5,  # was 27; suite3: deadline_scale
    "tests/test_demo.py::test_report_figures_show_what_they_say": 23,
    "tests/test_demo.py::test_json_keys": 22,
    "tests/test_die.py::test_default_station_program_then_read_and_reset": 19,
    "tests/test_finetune.py::test_finetuning_repairs_a_perturbed_chip_layer_reprogramming_only_changed_cells": 17,
    "tests/test_die.py::test_sigkill_mid_command_leaves_before_or_after": 16,
    "tests/test_view.py::test_replay_plays_at_k_times_the_recorded_pace": 7,  # was 15; suite3: 4 s recording
    "tests/test_die.py::test_sim_die_new_use_info": 13,
    "tests/test_die.py::test_default_station_refused_while_its_die_is_served": 13,
    "tests/test_campaign_resume.py::test_sigkill_at_random_moments_then_resume_gives_every_point_once": 19,
    "tests/test_campaign_resume.py::test_sigint_sigterm_stop_cleanly_and_resume[15-143]": 12,
    "tests/test_view.py::test_follows_a_run_written_by_another_process": 5,  # was 11; suite3: 0.3 s commits
    "tests/test_physics_crossbar.py::test_chip_noise_output_statistics_match_per_cell_simulation": 3,  # was 11 (suite3)
    "tests/test_campaign_resume.py::test_sigint_sigterm_stop_cleanly_and_resume[2-130]": 10,
    "tests/test_die.py::test_sigkill_during_saves_leaves_one_whole_die": 10,
    "tests/test_die.py::test_second_simulator_on_one_die_is_refused": 10,
    "tests/test_energy_gesture.py::test_reference_workload_constants_match_the_gesture_layer": 9,
    "tests/test_link_faults.py::test_10000_commands_on_a_faulty_link_match_a_clean_link": 9,
    "tests/test_die.py::test_pulse_counts_accumulate_across_sessions": 8,
    "tests/test_conformance.py::test_broken_variant_fails_its_named_check[no-echo]": 3,  # was 8 (suite3)
    "tests/test_conformance.py::test_busy_checks_wait_the_spec_deadline_by_default": 2,  # new (suite3)
    "tests/test_finetune.py::test_worst_corner_is_reported": 7,
    "tests/test_resume_wear.py::test_resume_after_kill_mid_batch_pulses_no_cell_within_tolerance": 7,
    "tests/test_synth.py::test_time_collapsed_classifiers_stay_below_70_percent": 7,
    "tests/test_kernel_exact.py::test_kernel_loads_and_runs_without_a_c_compiler": 7,
    "tests/test_finetune.py::test_reference_after_finetuning_is_within_one_point_at_typical": 13,
    "tests/test_die.py::test_freeze_gives_bit_identical_reads_and_unfrozen_does_not": 7,
    "tests/test_fuzz_firmware.py::test_fuzz_frames_bounded_memory_no_internal_no_hang[2000]": 7,
    "tests/test_protocol_v2.py::test_two_host_processes_in_a_row_never_get_each_others_cached_replies": 6,
    "tests/test_network_kernel.py::test_network_kernel_compiles_and_runs_without_a_c_compiler": 6,
    "tests/test_campaign_station.py::test_cluster_without_the_station_resource_is_refused": 6,
    "tests/test_conformance.py::test_cli_passes_over_real_transports[socket]": 6,
    "tests/test_conformance.py::test_cli_passes_over_real_transports[pty]": 5,
    "tests/test_conformance.py::test_broken_variant_fails_its_named_check[wrong-crc-long-frames]": 3,  # was 5 (suite3)
    "tests/test_view.py::test_at_commit_shows_the_file_as_it_was": 5,
    "tests/test_link_directions.py::test_10000_commands_with_stalls_and_duplicates_match_a_clean_link": 5,
    "tests/test_campaign_station.py::test_points_run_on_the_station": 5,
    "tests/test_kernel_simd.py::test_chip_kernel_ir_keeps_the_vector_operations": 5,
    "tests/test_conformance.py::test_cli_list_only_and_refusals": 5,
    "tests/test_bad_inputs.py::test_bad_input[train-data-missing]": 4,
    "tests/test_view.py::test_writer_killed_mid_run": 4,
    "tests/test_die.py::test_sim_serve_restart_keeps_state": 4,
    "tests/test_smu_real_behaviour.py::test_trace_on_a_trigger_that_never_comes_fails_without_hanging": 4,
    "tests/test_link_crc.py::test_version_json_names_the_crc_implementation": 4,
    "tests/test_die.py::test_station_file_names_its_die": 4,
}

CHEAP_SHARED = {"tests/test_bad_inputs.py"}
"""Modules whose module-scoped fixture is cheap (a few small input files): their tests are
spread over both workers rather than kept on one as a group."""
