// SPDX-License-Identifier: MIT
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CustomAutograd.Examples;

/// <summary>
/// One residual block: <c>LayerNorm(x + Linear(GELU(Linear(x))))</c>. Without checkpointing its graph keeps four
/// activations of the input's size: the first Linear's output (for GELU), GELU's output (for the second Linear),
/// the sum (for LayerNorm) and LayerNorm's output, which is the next block's input.
/// </summary>
public sealed class ResidualBlock : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1, fc2;
    private readonly GELU gelu;
    private readonly LayerNorm norm;

    /// <summary>Creates the block's layers.</summary>
    /// <param name="width">Input, hidden and output width.</param>
    /// <param name="device">Where the parameters live.</param>
    public ResidualBlock(int width, Device device) : base(nameof(ResidualBlock))
    {
        fc1 = nn.Linear(width, width, device: device);
        gelu = nn.GELU();
        fc2 = nn.Linear(width, width, device: device);
        norm = nn.LayerNorm(width, device: device);
        RegisterComponents();
    }

    /// <summary>Runs the block.</summary>
    /// <param name="x">The input, batch × width.</param>
    /// <returns>The output, batch × width.</returns>
    public override Tensor forward(Tensor x)
    {
        // Each intermediate's managed handle is released as soon as the next op has used it, so the autograd graph
        // alone decides how long an activation lives, as in PyTorch (the training step's dispose scope would
        // otherwise keep every one until the step ends).
        using Tensor h1 = fc1.call(x);
        using Tensor h2 = gelu.call(h1);
        using Tensor h3 = fc2.call(h2);
        using Tensor sum = x + h3;
        return norm.call(sum);
    }
}
