"""Speed measurements for ``make bench``: each module measures two things side by side in one run and
prints their ratio (the machine is shared and noisy, so only ratios measured together mean anything)."""
