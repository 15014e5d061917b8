// SPDX-License-Identifier: MIT
using System.Collections.Generic;
using static TorchSharp.torch;

namespace CustomAutograd;

// PyTorch's default (slow) mode: the whole numerical and analytical Jacobian of every (differentiable output,
// differentiable input) pair, compared element by element; then the reentrance of every backward.
internal static class SlowModeCheck
{
    internal static void Run(CheckedFunction f, GradCheckResult result)
    {
        int[] diffInputs = f.DiffInputs, diffOutputs = f.DiffOutputs;
        Tensor[,] numerical = NumericalJacobian.Compute(f, diffInputs, diffOutputs);
        (Tensor[,]? analytical, double[,] nondet) = AnalyticalJacobian.Compute(f, diffOutputs, result);
        if (analytical is null)
            return;

        var mismatches = new List<GradCheckMismatch>();
        var jacobians = new List<GradCheckJacobian>();
        for (int oo = 0; oo < diffOutputs.Length; oo++)
        {
            for (int ii = 0; ii < diffInputs.Length; ii++)
            {
                int o = diffOutputs[oo], i = diffInputs[ii];
                Tensor n = numerical[oo, ii], a = analytical[oo, ii];
                GradCheckJacobian? jacobian = f.Options.ReturnJacobians ? JacobianComparison.ToManaged(f, o, i, n, a) : null;
                if (jacobian is not null)
                    jacobians.Add(jacobian);
                if (JacobianComparison.Compare(f, o, i, n, a, onlyIfFailing: true) is { } m)
                {
                    m.Jacobian = jacobian ?? JacobianComparison.SmallJacobian(f, o, i, n, a);
                    mismatches.Add(m);
                }
            }
        }
        result.Jacobians = jacobians.ToArray();
        if (mismatches.Count > 0)
            JacobianComparison.FailMismatch(f, result, mismatches);
        else
            AnalyticalJacobian.CheckReentrant(f, nondet, result);
    }
}
