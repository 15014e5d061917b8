// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.TorchSharpInternals;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// Derivatives from central finite differences, (f(x + delta) - f(x - delta)) / (2 eps): one input element
// at a time (slow mode) or along a direction (fast mode). Each perturbation is an in-place write into the
// working copy of an input, undone before the next one.
internal static class NumericalJacobian
{
    // For each element k of each selected input, the central difference becomes column k of that input's
    // Jacobian with each selected output. Returns [output, input] tensors of shape [output numel, input numel],
    // float64, on the input's device.
    internal static Tensor[,] Compute(CheckedFunction f, int[] inputs, int[] outputs)
    {
        var jac = new Tensor[outputs.Length, inputs.Length];
        for (int oo = 0; oo < outputs.Length; oo++)
        {
            for (int ii = 0; ii < inputs.Length; ii++)
                jac[oo, ii] = f.NewJacobian(outputs[oo], inputs[ii]);
        }
        for (int ii = 0; ii < inputs.Length; ii++)
        {
            Tensor x = f.Input(inputs[ii]);
            long numel = x.numel();
            if (numel == 0)
                continue;
            using Tensor alias = x.detach();
            using Scalar eps = KeptScalars.Of(f.Options.Eps);
            using Tensor step = torch.full(Array.Empty<long>(), eps, dtype: x.dtype, device: x.device);
            long[] shape = x.shape, strides = x.stride();
            long offset = x.storage_offset();
            for (long k = 0; k < numel; k++)
            {
                using DisposeScope scope = torch.NewDisposeScope();
                long[] index = FlatIndex.Unravel(k, shape);
                long position = offset;
                for (int d = 0; d < shape.Length; d++)
                    position += index[d] * strides[d];
                Tensor element = alias.as_strided(Array.Empty<long>(), Array.Empty<long>(), position);
                Tensor[] column = CentralDifference(f, element, step, outputs);
                for (int oo = 0; oo < outputs.Length; oo++)
                    jac[oo, ii].select(1, k).copy_(column[oo]);
            }
        }
        return jac;
    }

    // The Jacobian-vector products J u of the selected outputs with input i, for the
    // float64 direction u (one value per input element): flat float64 vectors.
    internal static Tensor[] Directional(CheckedFunction f, int i, Tensor u, int[] outputs)
    {
        Tensor x = f.Input(i);
        using Tensor alias = x.detach();
        using Scalar eps = KeptScalars.Of(f.Options.Eps);
        Tensor delta = u.mul(eps).reshape(x.shape).to(x.dtype, x.device);
        return CentralDifference(f, alias, delta, outputs);
    }

    // Perturbs target (a view of a working input) by -delta and +delta, restores it,
    // and returns the central difference of each selected output, flattened, float64.
    private static Tensor[] CentralDifference(CheckedFunction f, Tensor target, Tensor delta, int[] outputs)
    {
        Tensor original = target.clone();
        target.copy_(original - delta);
        Tensor[] minus = f.EvaluateFlat(outputs);
        target.copy_(original.add(delta, KeptScalars.One));
        Tensor[] plus = f.EvaluateFlat(outputs);
        target.copy_(original);
        using Scalar scale = KeptScalars.Of(2 * f.Options.Eps);
        var differences = new Tensor[outputs.Length];
        for (int k = 0; k < outputs.Length; k++)
            differences[k] = (plus[k] - minus[k]).div(scale);
        return differences;
    }
}
